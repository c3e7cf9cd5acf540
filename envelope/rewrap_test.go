package envelope_test

import (
	"bytes"
	"encoding/json"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/daead"
	"github.com/tink-crypto/tink-go/v2/hybrid"
	"github.com/tink-crypto/tink-go/v2/keyset"
	tinkpb "github.com/tink-crypto/tink-go/v2/proto/tink_go_proto"

	"github.com/lifenavigator/crossservice/envelope"
)

// rwKeys is one keyset through a rotation: only the old key, then a new
// primary beside it, then the old key disabled.
type rwKeys struct {
	old, both, retired *keyset.Handle
	oldID, newID       uint32
}

func rwRotate(t *testing.T, tmpl *tinkpb.KeyTemplate) rwKeys {
	t.Helper()
	m := keyset.NewManager()
	var k rwKeys
	var err error
	k.oldID, err = m.Add(tmpl)
	require.NoError(t, err)
	require.NoError(t, m.SetPrimary(k.oldID))
	k.old, err = m.Handle()
	require.NoError(t, err)
	k.newID, err = m.Add(tmpl)
	require.NoError(t, err)
	require.NoError(t, m.SetPrimary(k.newID))
	k.both, err = m.Handle()
	require.NoError(t, err)
	require.NoError(t, m.Disable(k.oldID))
	k.retired, err = m.Handle()
	require.NoError(t, err)
	return k
}

// rwField is one sensitive value of the test document.
type rwField struct {
	path, schemaPath string
	mode             envelope.Mode
	plaintext        string
}

// rwFields cover markers in a struct, in arrays, under map keys (with an
// escaped key) and nested maps, of both modes.
var rwFields = []rwField{
	{"/owner", "/owner", envelope.Random, `"Jane Doe"`},
	{"/ssn", "/ssn", envelope.Deterministic, `"123456789"`},
	{"/owners/0/ssn", "/owners/*/ssn", envelope.Deterministic, `"111111111"`},
	{"/owners/1/ssn", "/owners/*/ssn", envelope.Deterministic, `"222222222"`},
	{"/owners/1/note", "/owners/*/note", envelope.Random, `{"x":[1,2]}`},
	{"/tags/a~1b", "/tags/*", envelope.Deterministic, `"tag"`},
	{"/nested/m/k1/x", "/nested/m/*/x", envelope.Deterministic, `7`},
	{"/matrix/0/1", "/matrix/*/*", envelope.Deterministic, `true`},
}

// rwSeal seals the test document with s; it returns the envelope.
func rwSeal(t *testing.T, s *envelope.Sealer) []byte {
	t.Helper()
	m, err := s.Begin("accounts.Account")
	require.NoError(t, err)
	mk := map[string][]byte{}
	for _, f := range rwFields {
		b, err := m.AppendField(nil, f.mode, []byte(f.path), []byte(f.schemaPath), []byte(f.plaintext))
		require.NoError(t, err)
		mk[f.path] = b
	}
	data := `{"id":"acc-1", "owner":` + string(mk["/owner"]) + `,"ssn":` + string(mk["/ssn"]) +
		`,"owners":[{"name":"a","ssn":` + string(mk["/owners/0/ssn"]) + `},{"ssn":` + string(mk["/owners/1/ssn"]) +
		`,"note":` + string(mk["/owners/1/note"]) + `}],"tags":{"a/b":` + string(mk["/tags/a~1b"]) +
		`},"nested":{"m":{"k1":{"x":` + string(mk["/nested/m/k1/x"]) + `}}},"matrix":[[1,` + string(mk["/matrix/0/1"]) +
		`]],"text":"{\"$enc\":\"random\"}","empty":{},"list":[],"balance":12.5e0}`
	env, err := m.Finish([]byte(data))
	require.NoError(t, err)
	return env
}

// rwMarker returns the raw marker at a JSON Pointer of data.
func rwMarker(t *testing.T, data []byte, ptr string) []byte {
	t.Helper()
	var v any
	require.NoError(t, json.Unmarshal(data, &v))
	var tokens []string
	start := 1
	for i := 1; i <= len(ptr); i++ {
		if i == len(ptr) || ptr[i] == '/' {
			tokens = append(tokens, ptr[start:i])
			start = i + 1
		}
	}
	for _, tok := range tokens {
		tok = string(bytes.ReplaceAll(bytes.ReplaceAll([]byte(tok), []byte("~1"), []byte("/")), []byte("~0"), []byte("~")))
		switch x := v.(type) {
		case map[string]any:
			v = x[tok]
		case []any:
			i, err := strconv.Atoi(tok)
			require.NoError(t, err)
			v = x[i]
		}
	}
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

func TestRewrapHPKE(t *testing.T) {
	hp := rwRotate(t, hybrid.DHKEM_X25519_HKDF_SHA256_HKDF_SHA256_AES_256_GCM_Key_Template())
	det := rwRotate(t, daead.AESSIVKeyTemplate())
	oldPub, err := hp.old.Public()
	require.NoError(t, err)
	to, err := envelope.NewHPKERecipient(oldPub)
	require.NoError(t, err)
	s, err := envelope.NewSealer(envelope.SealerConfig{Sender: sender, Recipient: recipient, To: to, Deterministic: det.old})
	require.NoError(t, err)
	orig := rwSeal(t, s)

	newPub, err := hp.both.Public()
	require.NoError(t, err)
	newTo, err := envelope.NewHPKERecipient(newPub)
	require.NoError(t, err)
	id, err := envelope.NewHPKEIdentity(hp.both)
	require.NoError(t, err)
	rw, err := envelope.NewRewrapper(envelope.RewrapConfig{Self: recipient, Identity: id, To: newTo, Deterministic: det.both})
	require.NoError(t, err)
	origCopy := bytes.Clone(orig)
	out, info, err := rw.Rewrap(orig)
	require.NoError(t, err)
	require.Equal(t, origCopy, orig, "the input is not modified")

	require.Equal(t, envelope.KeyInfo{Alg: envelope.AlgHPKE, KeyID: strconv.FormatUint(uint64(hp.oldID), 10)}, info.From)
	require.Equal(t, envelope.KeyInfo{Alg: envelope.AlgHPKE, KeyID: strconv.FormatUint(uint64(hp.newID), 10)}, info.To)
	require.Equal(t, 2, info.Random)
	require.Equal(t, 6, info.Deterministic)
	require.Equal(t, []string{strconv.FormatUint(uint64(det.oldID), 10)}, info.DeterministicKeys)

	before, err := envelope.Parse(orig)
	require.NoError(t, err)
	after, err := envelope.Parse(out)
	require.NoError(t, err)
	hb, ha := before.Header, after.Header
	require.Equal(t, hb.ID, ha.ID)
	require.Equal(t, hb.Sender, ha.Sender)
	require.Equal(t, hb.Recipient, ha.Recipient)
	require.Equal(t, hb.Type, ha.Type)
	require.True(t, hb.IssuedAt.Equal(ha.IssuedAt))
	require.NotEqual(t, hb.Key.Wrapped, ha.Key.Wrapped)
	// Clear data is kept byte for byte.
	require.Contains(t, string(after.Data), `"text":"{\"$enc\":\"random\"}","empty":{},"list":[],"balance":12.5e0}`)
	require.Contains(t, string(after.Data), `{"id":"acc-1", "owner":`)

	// The old envelope no longer opens once the old keys are retired; the
	// new one opens with the new keys only, every field at its place.
	retiredID, err := envelope.NewHPKEIdentity(hp.retired)
	require.NoError(t, err)
	retired, err := envelope.NewOpener(envelope.OpenerConfig{Self: recipient, Identity: retiredID, Deterministic: det.retired})
	require.NoError(t, err)
	_, err = retired.Open(orig)
	require.ErrorIs(t, err, envelope.ErrKeyRetired)
	opened, err := retired.Open(out)
	require.NoError(t, err)
	for _, f := range rwFields {
		oldMarker := rwMarker(t, before.Data, f.path)
		newMarker := rwMarker(t, after.Data, f.path)
		require.NotEqual(t, oldMarker, newMarker, "%s: ciphertext changed", f.path)
		pt, err := opened.OpenField(newMarker, f.mode, []byte(f.path), []byte(f.schemaPath))
		require.NoError(t, err, f.path)
		require.Equal(t, f.plaintext, string(pt), f.path)
	}

	// Rewrapping again is possible (the new keys are enabled) and keeps
	// deterministic ciphertexts: same key, same associated data.
	again, info2, err := rw.Rewrap(out)
	require.NoError(t, err)
	require.Equal(t, info.To, info2.From)
	againEnv, err := envelope.Parse(again)
	require.NoError(t, err)
	require.Equal(t, rwMarker(t, after.Data, "/ssn"), rwMarker(t, againEnv.Data, "/ssn"))
	require.NotEqual(t, rwMarker(t, after.Data, "/owner"), rwMarker(t, againEnv.Data, "/owner"))
}

func TestRewrapAEADKeyset(t *testing.T) {
	ak := rwRotate(t, aead.AES256GCMKeyTemplate())
	oldTo, err := envelope.NewAEADKeysetRecipient(ak.old)
	require.NoError(t, err)
	s, err := envelope.NewSealer(envelope.SealerConfig{Sender: sender, Recipient: recipient, To: oldTo})
	require.NoError(t, err)
	m, err := s.Begin("x.Y")
	require.NoError(t, err)
	mk, err := m.AppendField(nil, envelope.Random, []byte("/a"), []byte("/a"), []byte(`1`))
	require.NoError(t, err)
	orig, err := m.Finish(append(append([]byte(`{"a":`), mk...), '}'))
	require.NoError(t, err)

	id, err := envelope.NewAEADKeysetIdentity(ak.both)
	require.NoError(t, err)
	to, err := envelope.NewAEADKeysetRecipient(ak.both)
	require.NoError(t, err)
	rw, err := envelope.NewRewrapper(envelope.RewrapConfig{Self: recipient, Identity: id, To: to})
	require.NoError(t, err)
	out, info, err := rw.Rewrap(orig)
	require.NoError(t, err)
	require.Equal(t, envelope.AlgAEAD, info.To.Alg)
	require.Equal(t, strconv.FormatUint(uint64(ak.newID), 10), info.To.KeyID)

	rid, err := envelope.NewAEADKeysetIdentity(ak.retired)
	require.NoError(t, err)
	o, err := envelope.NewOpener(envelope.OpenerConfig{Self: recipient, Identity: rid})
	require.NoError(t, err)
	opened, err := o.Open(out)
	require.NoError(t, err)
	pt, err := opened.OpenField(rwMarker(t, opened.Data, "/a"), envelope.Random, []byte("/a"), []byte("/a"))
	require.NoError(t, err)
	require.Equal(t, "1", string(pt))
}

func TestRewrapRefuses(t *testing.T) {
	hp := rwRotate(t, hybrid.DHKEM_X25519_HKDF_SHA256_HKDF_SHA256_AES_256_GCM_Key_Template())
	det := rwRotate(t, daead.AESSIVKeyTemplate())
	pub, err := hp.both.Public()
	require.NoError(t, err)
	to, err := envelope.NewHPKERecipient(pub)
	require.NoError(t, err)
	seal := func(rcp string, data func(m *envelope.Message) string) []byte {
		s, err := envelope.NewSealer(envelope.SealerConfig{Sender: sender, Recipient: rcp, To: to, Deterministic: det.both})
		require.NoError(t, err)
		m, err := s.Begin("x.Y")
		require.NoError(t, err)
		env, err := m.Finish([]byte(data(m)))
		require.NoError(t, err)
		return env
	}
	marker := func(m *envelope.Message, mode envelope.Mode, path, sp string) string {
		b, err := m.AppendField(nil, mode, []byte(path), []byte(sp), []byte(`"v"`))
		require.NoError(t, err)
		return string(b)
	}
	id, err := envelope.NewHPKEIdentity(hp.both)
	require.NoError(t, err)
	rw, err := envelope.NewRewrapper(envelope.RewrapConfig{Self: recipient, Identity: id, To: to, Deterministic: det.both})
	require.NoError(t, err)

	good := seal(recipient, func(m *envelope.Message) string {
		return `{"a":` + marker(m, envelope.Random, "/a", "/a") + `,"b":"clear"}`
	})
	_, _, err = rw.Rewrap(good)
	require.NoError(t, err)

	tests := []struct {
		name string
		env  []byte
		want error
	}{
		{"tampered clear field", bytes.Replace(good, []byte(`"clear"`), []byte(`"CLEAR"`), 1), envelope.ErrCannotOpen},
		{"another recipient", seal("analytics-service", func(m *envelope.Message) string {
			return `{"a":` + marker(m, envelope.Random, "/a", "/a") + `}`
		}), envelope.ErrCannotOpen},
		{"marker moved", seal(recipient, func(m *envelope.Message) string {
			return `{"b":` + marker(m, envelope.Random, "/a", "/a") + `}`
		}), envelope.ErrCannotOpen},
		{"clear object with $enc", seal(recipient, func(m *envelope.Message) string {
			return `{"free":{"$enc":"random","ct":"AAAA"}}`
		}), envelope.ErrCannotOpen},
		{"marker with extra member", seal(recipient, func(m *envelope.Message) string {
			return `{"free":{"$enc":"random","ct":"AAAA","x":{}}}`
		}), envelope.ErrCannotOpen},
		{"unknown mode", seal(recipient, func(m *envelope.Message) string {
			return `{"free":{"$enc":"other","ct":"AAAA"}}`
		}), envelope.ErrCannotOpen},
		{"deterministic under another schema path", seal(recipient, func(m *envelope.Message) string {
			return `{"a":` + marker(m, envelope.Deterministic, "/a", "/elsewhere") + `}`
		}), envelope.ErrCannotOpen},
		{"not an envelope", []byte(`{"hdr":1}`), envelope.ErrCannotOpen},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := rw.Rewrap(tc.env)
			require.ErrorIs(t, err, tc.want)
			require.Nil(t, out)
		})
	}

	// A key disabled in the rewrapper's own keyset is reported as retired.
	oldPub, err := hp.old.Public()
	require.NoError(t, err)
	oldTo, err := envelope.NewHPKERecipient(oldPub)
	require.NoError(t, err)
	s, err := envelope.NewSealer(envelope.SealerConfig{Sender: sender, Recipient: recipient, To: oldTo})
	require.NoError(t, err)
	m, err := s.Begin("x.Y")
	require.NoError(t, err)
	old, err := m.Finish([]byte(`{}`))
	require.NoError(t, err)
	rid, err := envelope.NewHPKEIdentity(hp.retired)
	require.NoError(t, err)
	rrw, err := envelope.NewRewrapper(envelope.RewrapConfig{Self: recipient, Identity: rid, To: to})
	require.NoError(t, err)
	_, _, err = rrw.Rewrap(old)
	var kre *envelope.KeyRetiredError
	require.ErrorAs(t, err, &kre)

	// A rewrapped envelope is protected like any other.
	out, _, err := rw.Rewrap(good)
	require.NoError(t, err)
	o, err := envelope.NewOpener(envelope.OpenerConfig{Self: recipient, Identity: id})
	require.NoError(t, err)
	_, err = o.Open(bytes.Replace(out, []byte(`"clear"`), []byte(`"CLEAR"`), 1))
	require.ErrorIs(t, err, envelope.ErrCannotOpen)

	_, err = envelope.NewRewrapper(envelope.RewrapConfig{Self: recipient, Identity: id})
	require.Error(t, err, "To is required")
	_, err = envelope.NewRewrapper(envelope.RewrapConfig{Self: "Bad Name", Identity: id, To: to})
	require.Error(t, err)
}

func TestRewrapConcurrent(t *testing.T) {
	hp := rwRotate(t, hybrid.DHKEM_X25519_HKDF_SHA256_HKDF_SHA256_AES_256_GCM_Key_Template())
	det := rwRotate(t, daead.AESSIVKeyTemplate())
	oldPub, err := hp.old.Public()
	require.NoError(t, err)
	oldTo, err := envelope.NewHPKERecipient(oldPub)
	require.NoError(t, err)
	s, err := envelope.NewSealer(envelope.SealerConfig{Sender: sender, Recipient: recipient, To: oldTo, Deterministic: det.old})
	require.NoError(t, err)
	orig := rwSeal(t, s)
	pub, err := hp.both.Public()
	require.NoError(t, err)
	to, err := envelope.NewHPKERecipient(pub)
	require.NoError(t, err)
	id, err := envelope.NewHPKEIdentity(hp.both)
	require.NoError(t, err)
	rw, err := envelope.NewRewrapper(envelope.RewrapConfig{Self: recipient, Identity: id, To: to, Deterministic: det.both,
		Reuse: envelope.Reuse{MaxMessages: 5, MaxAge: time.Hour}})
	require.NoError(t, err)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				if _, _, err := rw.Rewrap(orig); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func BenchmarkRewrap(b *testing.B) {
	k := sharedKeys()
	r, err := envelope.NewHPKERecipient(k.hpkePub)
	require.NoError(b, err)
	s, err := envelope.NewSealer(envelope.SealerConfig{Sender: sender, Recipient: recipient, To: r, Deterministic: k.daead})
	require.NoError(b, err)
	m, err := s.Begin("x.Y")
	require.NoError(b, err)
	mk, err := m.AppendField(nil, envelope.Random, []byte("/a"), []byte("/a"), []byte(`"value"`))
	require.NoError(b, err)
	dk, err := m.AppendField(nil, envelope.Deterministic, []byte("/m/k/d"), []byte("/m/*/d"), []byte(`"value"`))
	require.NoError(b, err)
	env, err := m.Finish([]byte(`{"id":"x","a":` + string(mk) + `,"m":{"k":{"d":` + string(dk) + `}},"n":1}`))
	require.NoError(b, err)
	id, err := envelope.NewHPKEIdentity(k.hpkePriv)
	require.NoError(b, err)
	rw, err := envelope.NewRewrapper(envelope.RewrapConfig{Self: recipient, Identity: id, To: r, Deterministic: k.daead})
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := rw.Rewrap(env); err != nil {
			b.Fatal(err)
		}
	}
}
