package envelope_test

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tink-crypto/tink-go/v2/hybrid"
	"github.com/tink-crypto/tink-go/v2/keyset"

	"github.com/lifenavigator/crossservice/envelope"
)

// reheader re-marshals env after mod changed its parsed header.
func reheader(t *testing.T, env []byte, mod func(h *envelope.Header)) []byte {
	t.Helper()
	e, err := envelope.Parse(env)
	require.NoError(t, err)
	mod(&e.Header)
	e.RawHeader = nil
	return e.Marshal()
}

func flip(b []byte, i int) []byte {
	b = bytes.Clone(b)
	b[i] ^= 0x01
	return b
}

func TestTamperEnvelope(t *testing.T) {
	k := sharedKeys()
	s := hpkeSealer(t, k, nil)
	env := sealDoc(t, s)
	// Another recipient with its own keys, for moved wrapped keys.
	other := newKeys(t)
	otherEnv := sealDoc(t, hpkeSealer(t, other, nil))

	e, err := envelope.Parse(env)
	require.NoError(t, err)

	cases := map[string][]byte{
		"hdr id": reheader(t, env, func(h *envelope.Header) {
			h.ID = h.ID[:35] + string("0123456789abcdef"[(strings.IndexByte("0123456789abcdef", h.ID[35])+1)%16])
		}),
		"hdr snd":  reheader(t, env, func(h *envelope.Header) { h.Sender = "analytics-service" }),
		"hdr typ":  reheader(t, env, func(h *envelope.Header) { h.Type = "accounts.Other" }),
		"hdr iat":  reheader(t, env, func(h *envelope.Header) { h.IssuedAt = h.IssuedAt.Add(time.Millisecond) }),
		"hdr alg":  reheader(t, env, func(h *envelope.Header) { h.Key.Alg = envelope.AlgAEAD }),
		"hdr kid":  reheader(t, env, func(h *envelope.Header) { h.Key.KeyID = "1" }),
		"hdr kid0": reheader(t, env, func(h *envelope.Header) { h.Key.KeyID = "0" + h.Key.KeyID }),
		"hdr wk flipped": reheader(t, env, func(h *envelope.Header) {
			h.Key.Wrapped = flip(h.Key.Wrapped, len(h.Key.Wrapped)-1)
		}),
		"hdr wk enc flipped": reheader(t, env, func(h *envelope.Header) { h.Key.Wrapped = flip(h.Key.Wrapped, 10) }),
		"hdr wk prefix":      reheader(t, env, func(h *envelope.Header) { h.Key.Wrapped = flip(h.Key.Wrapped, 4) }),
		"hdr wk truncated":   reheader(t, env, func(h *envelope.Header) { h.Key.Wrapped = h.Key.Wrapped[:len(h.Key.Wrapped)-1] }),
		"hdr wk from other recipient": reheader(t, env, func(h *envelope.Header) {
			o, err := envelope.Parse(otherEnv)
			require.NoError(t, err)
			h.Key = o.Header.Key
		}),
		"hdr whitespace added": bytes.Replace(env, []byte(`{"v":1,`), []byte(`{"v":1, `), 1),
		"data changed":         bytes.Replace(env, []byte(`"balance":12.5`), []byte(`"balance":13.5`), 1),
		"data member added":    bytes.Replace(env, []byte(`"balance":12.5`), []byte(`"balance":12.5,"admin":true`), 1),
		"data member removed":  bytes.Replace(env, []byte(`"balance":12.5,`), nil, 1),
		"data whitespace":      bytes.Replace(env, []byte(`"balance":12.5`), []byte(`"balance": 12.5`), 1),
		"data marker removed":  removeMember(t, env, `"owner":`),
		"data from other":      (&envelope.Envelope{RawHeader: e.RawHeader, Data: mustParse(t, otherEnv).Data, Tag: e.Tag}).Marshal(),
		"tag flipped first":    (&envelope.Envelope{RawHeader: e.RawHeader, Data: e.Data, Tag: flip(e.Tag, 0)}).Marshal(),
		"tag flipped last":     (&envelope.Envelope{RawHeader: e.RawHeader, Data: e.Data, Tag: flip(e.Tag, 27)}).Marshal(),
		"tag from other":       (&envelope.Envelope{RawHeader: e.RawHeader, Data: e.Data, Tag: mustParse(t, otherEnv).Tag}).Marshal(),
		"envelope for other":   otherEnv, // addressed to the same name, other keys: unknown kid
		"wrong recipient": func() []byte {
			s2 := hpkeSealer(t, k, func(c *envelope.SealerConfig) { c.Recipient = "analytics-service" })
			return sealDoc(t, s2)
		}(),
	}
	o := hpkeOpener(t, k, nil)
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			require.NotEqual(t, env, bad)
			// Warm the cache with the genuine envelope first: the cache must
			// never stand in for a check.
			_, err := o.Open(env)
			require.NoError(t, err)
			op, err := o.Open(bad)
			require.Nil(t, op)
			requireCannotOpen(t, err)
			require.Equal(t, envelope.ErrCannotOpen.Error(), err.Error(), "the text says nothing more")
		})
	}

	tagB64 := base64.RawURLEncoding.EncodeToString(e.Tag)
	parseCases := map[string][]byte{
		"hdr v":            bytes.Replace(env, []byte(`"v":1`), []byte(`"v":2`), 1),
		"tag truncated":    (&envelope.Envelope{RawHeader: e.RawHeader, Data: e.Data, Tag: e.Tag[:27]}).Marshal(),
		"tag padded":       bytes.Replace(env, []byte(tagB64), []byte(tagB64+"=="), 1),
		"trailing garbage": append(bytes.Clone(env), " x"...),
		"duplicate member": append(bytes.Clone(env[:len(env)-1]), `,"tag":"`+base64.RawURLEncoding.EncodeToString(e.Tag)+`"}`...),
		"unknown member":   append(bytes.Clone(env[:len(env)-1]), `,"sig":"AA"}`...),
		"wk padded":        padWK(t, env),
	}
	for name, bad := range parseCases {
		t.Run(name, func(t *testing.T) {
			_, err := o.Open(bad)
			requireParseError(t, err)
		})
	}

	// Untouched, it still opens: the cases above failed for their change.
	_, got := openDoc(t, o, env)
	require.Equal(t, plains(), got)
}

func mustParse(t *testing.T, env []byte) *envelope.Envelope {
	t.Helper()
	e, err := envelope.Parse(env)
	require.NoError(t, err)
	return e
}

func padWK(t *testing.T, env []byte) []byte {
	e := mustParse(t, env)
	wk := base64.RawURLEncoding.EncodeToString(e.Header.Key.Wrapped)
	require.NotEqual(t, 0, len(e.Header.Key.Wrapped)%3, "test needs a wk whose length is not a multiple of 3")
	pad := strings.Repeat("=", (4-len(wk)%4)%4)
	return bytes.Replace(env, []byte(`"wk":"`+wk+`"`), []byte(`"wk":"`+wk+pad+`"`), 1)
}

// removeMember removes the member starting at name (a marker object) and
// the comma after it.
func removeMember(t *testing.T, env []byte, name string) []byte {
	i := bytes.Index(env, []byte(name))
	require.Positive(t, i)
	j := bytes.Index(env[i:], []byte(`"},`))
	require.Positive(t, j)
	return append(bytes.Clone(env[:i]), env[i+j+3:]...)
}

func TestTamperFields(t *testing.T) {
	k := sharedKeys()
	s := hpkeSealer(t, k, nil) // key reuse on: the other message has the same data key
	o := hpkeOpener(t, k, nil)
	env := sealDoc(t, s)
	op, err := o.Open(env)
	require.NoError(t, err)
	op2, err := o.Open(sealDoc(t, s))
	require.NoError(t, err)
	require.Equal(t, op.Header.Key, op2.Header.Key, "same data key")

	// Another recipient's envelope, same deterministic keyset name but
	// other keys.
	other := newKeys(t)
	otherS := hpkeSealer(t, other, func(c *envelope.SealerConfig) { c.Recipient = "analytics-service" })
	otherO := hpkeOpener(t, other, func(c *envelope.OpenerConfig) { c.Self = "analytics-service" })
	opOther, err := otherO.Open(sealDoc(t, otherS))
	require.NoError(t, err)

	owner := rawAt(t, op.Data, "/owner")
	ssn := rawAt(t, op.Data, "/ssn")
	ownerCT := mustMarkerCT(t, owner)
	ssnCT := mustMarkerCT(t, ssn)
	marker := func(mode string, ct []byte) []byte {
		return []byte(`{"$enc":"` + mode + `","ct":"` + base64.RawURLEncoding.EncodeToString(ct) + `"}`)
	}

	type tc struct {
		op       *envelope.Opened
		marker   []byte
		mode     envelope.Mode
		path, sp string
	}
	r, d := envelope.Random, envelope.Deterministic
	cannot := map[string]tc{
		"random ct flipped":          {op, marker("random", flip(ownerCT, len(ownerCT)-1)), r, "/owner", "/owner"},
		"random nonce flipped":       {op, marker("random", flip(ownerCT, 0)), r, "/owner", "/owner"},
		"random ct truncated":        {op, marker("random", ownerCT[:len(ownerCT)-1]), r, "/owner", "/owner"},
		"random ct empty":            {op, marker("random", nil), r, "/owner", "/owner"},
		"random moved to other path": {op, owner, r, "/owners/0/name", "/owners/*/name"},
		"random moved to sibling":    {op, rawAt(t, op.Data, "/owners/0/name"), r, "/owners/1/name", "/owners/*/name"},
		"random to other message":    {op2, owner, r, "/owner", "/owner"},
		"random to other recipient":  {opOther, owner, r, "/owner", "/owner"},
		"random as deterministic":    {op, bytes.Replace(owner, []byte(`"random"`), []byte(`"deterministic"`), 1), d, "/owner", "/owner"},
		"random opened in det mode":  {op, owner, d, "/owner", "/owner"},
		"det opened in random mode":  {op, ssn, r, "/ssn", "/ssn"},
		"det ct flipped":             {op, marker("deterministic", flip(ssnCT, len(ssnCT)-1)), d, "/ssn", "/ssn"},
		"det siv flipped":            {op, marker("deterministic", flip(ssnCT, 6)), d, "/ssn", "/ssn"},
		"det ct truncated":           {op, marker("deterministic", ssnCT[:len(ssnCT)-1]), d, "/ssn", "/ssn"},
		"det prefix only":            {op, marker("deterministic", ssnCT[:5]), d, "/ssn", "/ssn"},
		"det unknown kid":            {op, marker("deterministic", flip(ssnCT, 4)), d, "/ssn", "/ssn"},
		"det raw prefix":             {op, marker("deterministic", flip(ssnCT, 0)), d, "/ssn", "/ssn"},
		"det moved to other schema":  {op, ssn, d, "/owner", "/owner"},
		"det to other recipient":     {opOther, ssn, d, "/ssn", "/ssn"},
		"det nested moved up":        {op, rawAt(t, op.Data, "/tags/a~1b"), d, "/tags/a~1b", "/tags/a~1b"},
		"unknown mode name":          {op, bytes.Replace(owner, []byte(`"random"`), []byte(`"Random"`), 1), r, "/owner", "/owner"},
	}

	for name, c := range cannot {
		t.Run(name, func(t *testing.T) {
			pt, err := c.op.OpenField(c.marker, c.mode, []byte(c.path), []byte(c.sp))
			require.Nil(t, pt)
			requireCannotOpen(t, err)
		})
	}

	parse := map[string][]byte{
		"no ct":             []byte(`{"$enc":"random"}`),
		"no enc":            []byte(`{"ct":"AA"}`),
		"extra member":      []byte(`{"$enc":"random","ct":"AA","x":1}`),
		"duplicate ct":      bytes.Replace(owner, []byte(`"ct"`), []byte(`"ct":"AA","ct"`), 1),
		"duplicate enc":     bytes.Replace(owner, []byte(`"$enc":"random"`), []byte(`"$enc":"random","$enc":"random"`), 1),
		"padded ct":         bytes.Replace(owner, []byte(`"}`), []byte(`=="}`), 1),
		"ct std alphabet":   []byte(`{"$enc":"random","ct":"A+A"}`),
		"trailing":          append(bytes.Clone(owner), ',', '1'),
		"array":             []byte(`["random","AA"]`),
		"string":            []byte(`"Jane Doe"`),
		"empty":             nil,
		"invalid utf8":      []byte("{\"$enc\":\"random\xff\",\"ct\":\"AA\"}"),
		"ct not a string":   []byte(`{"$enc":"random","ct":1}`),
		"enc not a string":  []byte(`{"$enc":1,"ct":"AA"}`),
		"unterminated":      owner[:len(owner)-1],
		"escaped duplicate": bytes.Replace(owner, []byte(`"ct"`), []byte(`"ct":"AA","\u0063t"`), 1),
	}
	for name, m := range parse {
		t.Run(name, func(t *testing.T) {
			_, err := op.OpenField(m, envelope.Random, []byte("/owner"), []byte("/owner"))
			requireParseError(t, err)
		})
	}

	// Whitespace and member order inside the marker do not matter (the
	// bytes are covered by the tag anyway).
	ws := []byte(" {\n\"ct\" : \"" + base64.RawURLEncoding.EncodeToString(ownerCT) + "\" , \"$enc\":\"random\"}\t")
	pt, err := op.OpenField(ws, envelope.Random, []byte("/owner"), []byte("/owner"))
	require.NoError(t, err)
	require.Equal(t, `"Jane Doe"`, string(pt))

	// A deterministic marker is not bound to its message: by design it
	// opens in another message of the same type, at the same schema place.
	pt, err = op2.OpenField(ssn, d, []byte("/ssn"), []byte("/ssn"))
	require.NoError(t, err)
	require.Equal(t, `"123456789"`, string(pt))
	pt, err = op.OpenField(rawAt(t, op.Data, "/tags/a~1b"), d, []byte("/tags/other"), []byte("/tags/*"))
	require.NoError(t, err)
	require.Equal(t, `{"x":[1,2]}`, string(pt))

	// Misuse of OpenField is an error, but not a refusal of the input.
	_, err = op.OpenField(owner, envelope.Mode(0), []byte("/owner"), []byte("/owner"))
	require.Error(t, err)
	require.NotErrorIs(t, err, envelope.ErrCannotOpen)
	_, err = op.OpenField(owner, r, []byte("owner"), []byte("/owner"))
	require.Error(t, err)
	require.NotErrorIs(t, err, envelope.ErrCannotOpen)
}

func mustMarkerCT(t *testing.T, marker []byte) []byte {
	t.Helper()
	i := bytes.Index(marker, []byte(`"ct":"`))
	require.Positive(t, i)
	rest := marker[i+6:]
	ct, err := base64.RawURLEncoding.DecodeString(string(rest[:bytes.IndexByte(rest, '"')]))
	require.NoError(t, err)
	return ct
}

func TestOpenerWithoutDeterministicKeyset(t *testing.T) {
	k := sharedKeys()
	env := sealDoc(t, hpkeSealer(t, k, nil))
	o := hpkeOpener(t, k, func(c *envelope.OpenerConfig) { c.Deterministic = nil })
	op, err := o.Open(env)
	require.NoError(t, err)
	_, err = op.OpenField(rawAt(t, op.Data, "/ssn"), envelope.Deterministic, []byte("/ssn"), []byte("/ssn"))
	requireCannotOpen(t, err)
	_, err = op.OpenField(rawAt(t, op.Data, "/owner"), envelope.Random, []byte("/owner"), []byte("/owner"))
	require.NoError(t, err)
}

func TestUnknownKid(t *testing.T) {
	k := sharedKeys()
	// A keyset the opener has never seen: its kid is unknown.
	stranger, err := keyset.NewHandle(hybrid.DHKEM_X25519_HKDF_SHA256_HKDF_SHA256_AES_256_GCM_Key_Template())
	require.NoError(t, err)
	strangerPub, err := stranger.Public()
	require.NoError(t, err)
	env := sealDoc(t, hpkeSealer(t, &keys{hpkePub: strangerPub, daead: k.daead}, nil))
	_, err = hpkeOpener(t, k, nil).Open(env)
	requireCannotOpen(t, err)
}
