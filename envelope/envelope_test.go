package envelope_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/aead/subtle"
	"github.com/tink-crypto/tink-go/v2/hybrid"
	"github.com/tink-crypto/tink-go/v2/keyset"

	"github.com/lifenavigator/crossservice/envelope"
)

func TestRoundTrip(t *testing.T) {
	k := sharedKeys()
	kmsKey := make([]byte, 32)
	for i := range kmsKey {
		kmsKey[i] = byte(i)
	}
	kms, err := subtle.NewAESGCM(kmsKey) // stands in for a KMS-backed tink.AEAD
	require.NoError(t, err)

	hpkeR, err := envelope.NewHPKERecipient(k.hpkePub)
	require.NoError(t, err)
	hpkeI, err := envelope.NewHPKEIdentity(k.hpkePriv)
	require.NoError(t, err)
	ksR, err := envelope.NewAEADKeysetRecipient(k.aead)
	require.NoError(t, err)
	ksI, err := envelope.NewAEADKeysetIdentity(k.aead)
	require.NoError(t, err)
	kmsR, err := envelope.NewAEADRecipient("kms:proj.keys.k1", kms)
	require.NoError(t, err)
	kmsI, err := envelope.NewAEADIdentity("kms:proj.keys.k1", kms)
	require.NoError(t, err)

	for _, tc := range []struct {
		name string
		r    envelope.Recipient
		id   envelope.Identity
		alg  string
	}{
		{"hpke", hpkeR, hpkeI, envelope.AlgHPKE},
		{"aead-keyset", ksR, ksI, envelope.AlgAEAD},
		{"custom-aead", kmsR, kmsI, envelope.AlgAEAD},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			s, err := envelope.NewSealer(envelope.SealerConfig{
				Sender: sender, Recipient: recipient, To: tc.r, Deterministic: k.daead, Clock: clock.Now,
			})
			require.NoError(t, err)
			o, err := envelope.NewOpener(envelope.OpenerConfig{Self: recipient, Identity: tc.id, Deterministic: k.daead})
			require.NoError(t, err)

			env := sealDoc(t, s)
			op, got := openDoc(t, o, env)
			require.Equal(t, plains(), got)

			h := op.Header
			require.Equal(t, sender, h.Sender)
			require.Equal(t, recipient, h.Recipient)
			require.Equal(t, typeName, h.Type)
			require.Equal(t, tc.alg, h.Key.Alg)
			require.True(t, h.IssuedAt.Equal(clock.Now().Truncate(time.Millisecond)), h.IssuedAt)
			require.Equal(t, time.UTC, h.IssuedAt.Location())
			require.Equal(t, byte('7'), h.ID[14])
			// The id's timestamp is iat's.
			require.Equal(t, h.IssuedAt.UnixMilli(), uuidMillis(t, h.ID))

			// Parse/Marshal reproduce the exact bytes.
			e, err := envelope.Parse(env)
			require.NoError(t, err)
			require.Equal(t, env, e.Marshal())
			require.Equal(t, op.Data, e.Data)
			require.Equal(t, h, e.Header)
			// Marshalling the header from its fields gives the same bytes.
			e.RawHeader = nil
			require.Equal(t, env, e.Marshal())
		})
	}
}

func uuidMillis(t *testing.T, id string) int64 {
	t.Helper()
	hex := strings.ReplaceAll(id, "-", "")[:12]
	var ms int64
	for _, c := range hex {
		ms <<= 4
		switch {
		case c >= '0' && c <= '9':
			ms |= int64(c - '0')
		default:
			ms |= int64(c-'a') + 10
		}
	}
	return ms
}

func TestDeterministicEqualAcrossMessages(t *testing.T) {
	k := sharedKeys()
	s := hpkeSealer(t, k, func(c *envelope.SealerConfig) { c.Reuse.Disabled = true })
	m1, err := s.Begin(typeName)
	require.NoError(t, err)
	m2, err := s.Begin(typeName)
	require.NoError(t, err)
	path, sp, pt := []byte("/owners/0/ssn"), []byte("/owners/*/ssn"), []byte(`"123456789"`)
	a, err := m1.AppendField(nil, envelope.Deterministic, path, sp, pt)
	require.NoError(t, err)
	b, err := m2.AppendField(nil, envelope.Deterministic, []byte("/owners/7/ssn"), sp, pt)
	require.NoError(t, err)
	require.Equal(t, a, b, "same type, schema path and value must give the same marker")

	// Another schema path or type gives another ciphertext.
	c, err := m1.AppendField(nil, envelope.Deterministic, []byte("/ssn"), []byte("/ssn"), pt)
	require.NoError(t, err)
	require.NotEqual(t, a, c)
	m3, err := s.Begin("other.Type")
	require.NoError(t, err)
	d, err := m3.AppendField(nil, envelope.Deterministic, path, sp, pt)
	require.NoError(t, err)
	require.NotEqual(t, a, d)
}

func TestRandomNeverEqual(t *testing.T) {
	k := sharedKeys()
	s := hpkeSealer(t, k, nil) // key reuse on: same data key for both messages
	m, err := s.Begin(typeName)
	require.NoError(t, err)
	seen := map[string]bool{}
	for range 50 {
		b, err := m.AppendField(nil, envelope.Random, []byte("/owner"), []byte("/owner"), []byte(`"x"`))
		require.NoError(t, err)
		require.False(t, seen[string(b)], "random marker repeated")
		seen[string(b)] = true
	}
	m2, err := s.Begin(typeName)
	require.NoError(t, err)
	require.Equal(t, m.Header().Key.Wrapped, m2.Header().Key.Wrapped, "key reused")
	require.NotEqual(t, m.Header().ID, m2.Header().ID)
}

func TestAppendFieldAppends(t *testing.T) {
	s := hpkeSealer(t, sharedKeys(), nil)
	m, err := s.Begin(typeName)
	require.NoError(t, err)
	dst := []byte(`{"a":`)
	out, err := m.AppendField(dst, envelope.Random, []byte("/a"), []byte("/a"), []byte(`1`))
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(out, []byte(`{"a":{"$enc":"random","ct":"`)), string(out))
	require.True(t, bytes.HasSuffix(out, []byte(`"}`)))
	out, err = m.AppendField(nil, envelope.Deterministic, []byte("/a"), []byte("/a"), []byte(`1`))
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(out, []byte(`{"$enc":"deterministic","ct":"`)), string(out))
}

func TestSealerMisuse(t *testing.T) {
	k := sharedKeys()
	s := hpkeSealer(t, k, nil)
	_, err := s.Begin("")
	require.Error(t, err)
	_, err = s.Begin("has space")
	require.Error(t, err)
	_, err = s.Begin(strings.Repeat("x", 257))
	require.Error(t, err)

	m, err := s.Begin(typeName)
	require.NoError(t, err)
	for _, tc := range []struct {
		name       string
		mode       envelope.Mode
		path, sp   string
		plain      string
		wantErrMsg bool
	}{
		{"empty path", envelope.Random, "", "/a", "1", true},
		{"no slash", envelope.Random, "a", "/a", "1", true},
		{"bad tilde", envelope.Random, "/a~2", "/a", "1", true},
		{"bad schema path", envelope.Deterministic, "/a", "a", "1", true},
		{"not JSON", envelope.Random, "/a", "/a", "Jane", true},
		{"two values", envelope.Random, "/a", "/a", `1,"admin":true`, true},
		{"bad mode", envelope.Mode(9), "/a", "/a", "1", true},
	} {
		_, err := m.AppendField(nil, tc.mode, []byte(tc.path), []byte(tc.sp), []byte(tc.plain))
		require.Error(t, err, tc.name)
		require.NotContains(t, err.Error(), tc.plain, "plaintext in error text")
	}

	for _, data := range []string{``, `[]`, ` {}`, `{} `, `{"a":}`, `{"a":1}x`, "{\"a\":\"\xff\"}"} {
		_, err := m.Finish([]byte(data))
		require.Error(t, err, "%q", data)
	}
	_, err = m.Finish([]byte(`{}`))
	require.NoError(t, err)
	_, err = m.Finish([]byte(`{}`))
	require.Error(t, err, "second Finish")
	_, err = m.AppendField(nil, envelope.Random, []byte("/a"), []byte("/a"), []byte("1"))
	require.Error(t, err, "AppendField after Finish")

	// No deterministic keyset: deterministic fields refused.
	noDet := hpkeSealer(t, k, func(c *envelope.SealerConfig) { c.Deterministic = nil })
	m, err = noDet.Begin(typeName)
	require.NoError(t, err)
	_, err = m.AppendField(nil, envelope.Deterministic, []byte("/a"), []byte("/a"), []byte("1"))
	require.Error(t, err)
}

func TestConfigValidation(t *testing.T) {
	k := sharedKeys()
	r, err := envelope.NewHPKERecipient(k.hpkePub)
	require.NoError(t, err)
	id, err := envelope.NewHPKEIdentity(k.hpkePriv)
	require.NoError(t, err)

	bad := []envelope.SealerConfig{
		{Sender: "", Recipient: recipient, To: r},
		{Sender: sender, Recipient: "*", To: r},
		{Sender: "Frontend", Recipient: recipient, To: r},
		{Sender: sender, Recipient: recipient},
		{Sender: sender, Recipient: recipient, To: r, Reuse: envelope.Reuse{MaxMessages: -1}},
		{Sender: sender, Recipient: recipient, To: r, Reuse: envelope.Reuse{MaxAge: -time.Second}},
		{Sender: sender, Recipient: recipient, To: r, Deterministic: k.aead},
	}
	for i, cfg := range bad {
		_, err := envelope.NewSealer(cfg)
		require.Error(t, err, i)
	}
	badO := []envelope.OpenerConfig{
		{Self: "", Identity: id},
		{Self: recipient},
		{Self: recipient, Identity: id, MaxSize: -1},
		{Self: recipient, Identity: id, Cache: envelope.Cache{Size: -1}},
		{Self: recipient, Identity: id, Cache: envelope.Cache{TTL: -1}},
		{Self: recipient, Identity: id, Deterministic: k.hpkePriv},
	}
	for i, cfg := range badO {
		_, err := envelope.NewOpener(cfg)
		require.Error(t, err, i)
	}
}

func TestKeyConstructors(t *testing.T) {
	k := sharedKeys()

	// A private HPKE keyset is refused as a recipient: a sender must never
	// hold the recipient's private key.
	_, err := envelope.NewHPKERecipient(k.hpkePriv)
	require.ErrorContains(t, err, "private")
	_, err = envelope.NewHPKERecipient(k.aead)
	require.Error(t, err)
	_, err = envelope.NewHPKERecipient(nil)
	require.Error(t, err)
	// Other HPKE parameters or another prefix are refused.
	for _, tmpl := range []struct {
		name string
		h    func() (*keyset.Handle, error)
	}{
		{"aes128", func() (*keyset.Handle, error) {
			return keyset.NewHandle(hybrid.DHKEM_X25519_HKDF_SHA256_HKDF_SHA256_AES_128_GCM_Key_Template())
		}},
		{"raw", func() (*keyset.Handle, error) {
			return keyset.NewHandle(hybrid.DHKEM_X25519_HKDF_SHA256_HKDF_SHA256_AES_256_GCM_Raw_Key_Template())
		}},
		{"p256", func() (*keyset.Handle, error) {
			return keyset.NewHandle(hybrid.DHKEM_P256_HKDF_SHA256_HKDF_SHA256_AES_256_GCM_Key_Template())
		}},
		{"ecies", func() (*keyset.Handle, error) {
			return keyset.NewHandle(hybrid.ECIESHKDFAES128GCMKeyTemplate())
		}},
	} {
		priv, err := tmpl.h()
		require.NoError(t, err)
		pub, err := priv.Public()
		require.NoError(t, err)
		_, err = envelope.NewHPKERecipient(pub)
		require.Error(t, err, tmpl.name)
		_, err = envelope.NewHPKEIdentity(priv)
		require.Error(t, err, tmpl.name)
	}
	// An identity needs the private keyset.
	_, err = envelope.NewHPKEIdentity(k.hpkePub)
	require.Error(t, err)
	_, err = envelope.NewHPKEIdentity(nil)
	require.Error(t, err)

	// AEAD keysets: a non-AEAD keyset is refused.
	_, err = envelope.NewAEADKeysetRecipient(k.daead)
	require.Error(t, err)
	_, err = envelope.NewAEADKeysetIdentity(k.hpkePriv)
	require.Error(t, err)
	a, err := aead.New(k.aead)
	require.NoError(t, err)
	for _, kid := range []string{"", "has space", strings.Repeat("k", 65), "é"} {
		_, err = envelope.NewAEADRecipient(kid, a)
		require.Error(t, err, kid)
		_, err = envelope.NewAEADIdentity(kid, a)
		require.Error(t, err, kid)
	}
	_, err = envelope.NewAEADRecipient("k1", nil)
	require.Error(t, err)

	// Deterministic keysets must be AES-SIV with the TINK prefix.
	r, err := envelope.NewHPKERecipient(k.hpkePub)
	require.NoError(t, err)
	_, err = envelope.NewSealer(envelope.SealerConfig{Sender: sender, Recipient: recipient, To: r, Deterministic: k.hpkePub})
	require.Error(t, err)
}

// TestNoSecretsInText prints every value a user may log and checks that no
// key, plaintext or ciphertext shows up.
func TestNoSecretsInText(t *testing.T) {
	k := sharedKeys()
	kmsKey := bytes.Repeat([]byte{0x42}, 32)
	kms, err := subtle.NewAESGCM(kmsKey)
	require.NoError(t, err)
	r, err := envelope.NewAEADRecipient("k1", kms)
	require.NoError(t, err)
	id, err := envelope.NewAEADIdentity("k1", kms)
	require.NoError(t, err)
	s, err := envelope.NewSealer(envelope.SealerConfig{Sender: sender, Recipient: recipient, To: r, Deterministic: k.daead})
	require.NoError(t, err)
	o, err := envelope.NewOpener(envelope.OpenerConfig{Self: recipient, Identity: id, Deterministic: k.daead})
	require.NoError(t, err)
	env := sealDoc(t, s)
	op, _ := openDoc(t, o, env)

	var texts []string
	for _, v := range []any{r, id, s, o} {
		texts = append(texts, sprint(v))
	}
	// Errors from every kind of refusal.
	bad := bytes.Replace(env, []byte(`"balance":12.5`), []byte(`"balance":13.5`), 1)
	_, err = o.Open(bad)
	texts = append(texts, err.Error())
	_, err = op.OpenField([]byte(`{"$enc":"random","ct":"AAAA"}`), envelope.Random, []byte("/owner"), []byte("/owner"))
	texts = append(texts, err.Error())
	for _, txt := range texts {
		for _, secret := range []string{"Jane Doe", "123456789", "BBBB", string(kmsKey), "QkJC"} {
			require.NotContains(t, txt, secret)
		}
		require.True(t, strings.HasPrefix(txt, "envelope"), txt)
	}
}

func TestZeroValuesDoNotPanic(t *testing.T) {
	_, err := (&envelope.Sealer{}).Begin(typeName)
	require.Error(t, err)
	_, err = (&envelope.Message{}).AppendField(nil, envelope.Random, []byte("/a"), []byte("/a"), []byte("1"))
	require.Error(t, err)
	_, err = (&envelope.Message{}).Finish([]byte(`{}`))
	require.Error(t, err)
	_, err = (&envelope.Opener{}).Open([]byte(`{}`))
	require.Error(t, err)
	_, err = (&envelope.Opened{}).OpenField([]byte(`{}`), envelope.Random, []byte("/a"), []byte("/a"))
	require.Error(t, err)
}

type failingAEAD struct{ err error }

func (f failingAEAD) Encrypt(p, ad []byte) ([]byte, error) { return append([]byte{9}, p...), nil }
func (f failingAEAD) Decrypt(c, ad []byte) ([]byte, error) { return nil, f.err }

type failingIdentity struct{ err error }

func (f failingIdentity) Unwrap(envelope.KeyInfo, []byte) ([]byte, error) { return nil, f.err }

// TestIdentityErrors: a KMS outage is still "cannot open", with nothing more
// in the text, but the cause can be told apart with errors.Is.
func TestIdentityErrors(t *testing.T) {
	kmsDown := errors.New("kms: deadline exceeded for key projects/p/keys/secret")
	r, err := envelope.NewAEADRecipient("k1", failingAEAD{})
	require.NoError(t, err)
	s, err := envelope.NewSealer(envelope.SealerConfig{Sender: sender, Recipient: recipient, To: r})
	require.NoError(t, err)
	m, err := s.Begin(typeName)
	require.NoError(t, err)
	env, err := m.Finish([]byte(`{}`))
	require.NoError(t, err)

	kmsID, err := envelope.NewAEADIdentity("k1", failingAEAD{err: context.DeadlineExceeded})
	require.NoError(t, err)
	for _, id := range []envelope.Identity{kmsID, failingIdentity{kmsDown}} {
		o, err := envelope.NewOpener(envelope.OpenerConfig{Self: recipient, Identity: id})
		require.NoError(t, err)
		_, err = o.Open(env)
		requireCannotOpen(t, err)
		require.Equal(t, "envelope: cannot open", err.Error())
		require.True(t, errors.Is(err, context.DeadlineExceeded) || errors.Is(err, kmsDown))
	}
	// Another kid than the identity's: cannot open, no call to the AEAD.
	other, err := envelope.NewAEADIdentity("k2", failingAEAD{err: context.DeadlineExceeded})
	require.NoError(t, err)
	o, err := envelope.NewOpener(envelope.OpenerConfig{Self: recipient, Identity: other})
	require.NoError(t, err)
	_, err = o.Open(env)
	requireCannotOpen(t, err)
	require.NotErrorIs(t, err, context.DeadlineExceeded)

	// A retired key reported by a custom identity keeps its type.
	o, err = envelope.NewOpener(envelope.OpenerConfig{Self: recipient, Identity: failingIdentity{&envelope.KeyRetiredError{KeyID: "k1"}}})
	require.NoError(t, err)
	_, err = o.Open(env)
	requireKeyRetired(t, err, "k1")
}
