package envelope_test

// Regression tests for a security review of the package: field plaintexts
// must be UTF-8 (sealing and opening), iat is parsed strictly, a custom
// Identity's policy is not bypassed by the cache of unwrapped keys, and key
// reuse has a ceiling.

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tink-crypto/tink-go/v2/aead/subtle"
	"github.com/tink-crypto/tink-go/v2/daead"

	"github.com/lifenavigator/crossservice/envelope"
)

// Plaintexts that are JSON to encoding/json (json.Valid) but not UTF-8, so
// not JSON as SPEC.md part 1, 8.1 defines a field plaintext. Short and long
// strings, so that both the byte-wise and the word-wise scan of the fast
// path see them, and values the fast path leaves to the general check.
var nonUTF8Plaintexts = []string{
	"\"\xff\xfe\"",             // the review's example
	"\"Zo\xc3\"",               // truncated sequence
	"\"abcdefghijklmnop\xc3\"", // after a run of eight-byte words
	"\"abcdefgh\xe9ijklmnop\"", // Latin-1, not UTF-8
	"\"\xc0\xaf\"",             // overlong '/'
	"\"\xed\xa0\x80\"",         // a surrogate, encoded
	"\"\xf4\x90\x80\x80\"",     // above U+10FFFF
	" \"\xff\" ",               // whitespace around: not the fast path
	"[\"\xff\"]",               // inside an array
	"{\"k\xff\":1}",            // in a member name
	"{\"k\":\"a\\n\xe9\"}",     // after an escape
	"\"\\u00e9\xff\"",          // after a \u escape
	"\"" + strings.Repeat("x", 100) + "\x80\"",
}

// UTF-8 plaintexts that must still seal and open.
var utf8Plaintexts = []string{
	`"Jane Doe"`, `""`, "\"Zo\xc3\xab Poe\"", "\"\xf0\x9f\x98\x80 abcdefghijklmnop\"", `"\ud83d\ude00"`,
	`{"x":[1,2],"y":"é"}`, ` 12.5 `, `null`,
}

func TestAppendFieldRefusesNonUTF8Plaintext(t *testing.T) {
	s := hpkeSealer(t, sharedKeys(), nil)
	m, err := s.Begin(typeName)
	require.NoError(t, err)
	for _, mode := range []envelope.Mode{envelope.Random, envelope.Deterministic} {
		for _, pt := range nonUTF8Plaintexts {
			dst := []byte(`{"a":`)
			out, err := m.AppendField(dst, mode, []byte("/a"), []byte("/a"), []byte(pt))
			require.Error(t, err, "%v %q sealed", mode, pt)
			// A caller's error, not a refusal of input.
			require.NotErrorIs(t, err, envelope.ErrCannotOpen)
			require.Equal(t, `{"a":`, string(out), "dst changed")
		}
		for _, pt := range utf8Plaintexts {
			_, err := m.AppendField(nil, mode, []byte("/a"), []byte("/a"), []byte(pt))
			require.NoError(t, err, "%v %q", mode, pt)
		}
	}
	_, err = m.Finish([]byte(`{}`))
	require.NoError(t, err)
}

// TestOpenFieldRefusesNonUTF8Plaintext seals, with the primitives of the
// specification, markers whose plaintexts are not UTF-8 (a sender that does
// not check), and opens them in canonical form (the fast path) and spelled
// otherwise (the general marker parser): both must refuse with
// ErrCannotOpen, and open the UTF-8 ones.
func TestOpenFieldRefusesNonUTF8Plaintext(t *testing.T) {
	const id, snd, rcp, typ = "019ad0b0-5d2b-7c3e-9f00-0123456789ab", "frontend", "financial-service", "T"
	hdr := `{"v":1,"id":"` + id + `","snd":"` + snd + `","rcp":"` + rcp + `","typ":"` + typ + `",` +
		`"iat":"2026-11-29T16:20:46.123Z","key":{"alg":"aead","kid":"k1","wk":"AA"}}`
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	detKeys := sharedKeys().daead
	det, err := daead.New(detKeys)
	require.NoError(t, err)

	type fieldCase struct {
		path    string
		mode    envelope.Mode
		pt      string
		opens   bool
		spelled string // the marker as it stands in data
	}
	var cases []fieldCase
	var data strings.Builder
	data.WriteString("{")
	all := append(append([]string{}, nonUTF8Plaintexts...), utf8Plaintexts...)
	for i, pt := range all {
		for _, mode := range []envelope.Mode{envelope.Random, envelope.Deterministic} {
			for _, canonical := range []bool{true, false} {
				path := fmt.Sprintf("/f%d_%v_%v", i, mode, canonical)
				var ct []byte
				if mode == envelope.Random {
					ct = gcmSeal(t, k, []byte(pt), lp("xsvc/v1/field", id, snd, rcp, typ, path))
				} else {
					ct, err = det.EncryptDeterministically([]byte(pt), lp("xsvc/v1/det", typ, path))
					require.NoError(t, err)
				}
				c64 := base64.RawURLEncoding.EncodeToString(ct)
				marker := `{"$enc":"` + mode.String() + `","ct":"` + c64 + `"}`
				if !canonical {
					marker = `{ "ct": "` + c64 + `", "$enc": "` + mode.String() + `" }`
				}
				if len(cases) > 0 {
					data.WriteString(",")
				}
				data.WriteString(`"` + path[1:] + `":` + marker)
				cases = append(cases, fieldCase{path, mode, pt, i >= len(nonUTF8Plaintexts), marker})
			}
		}
	}
	data.WriteString("}")
	tag := gcmSeal(t, k, nil, lp("xsvc/v1/envelope", hdr, data.String()))
	env := `{"hdr":` + hdr + `,"data":` + data.String() + `,"tag":"` + base64.RawURLEncoding.EncodeToString(tag) + `"}`

	o, err := envelope.NewOpener(envelope.OpenerConfig{Self: rcp, Identity: fixedIdentity{k}, Deterministic: detKeys})
	require.NoError(t, err)
	op, err := o.Open([]byte(env))
	require.NoError(t, err)
	for _, c := range cases {
		require.Equal(t, c.spelled, string(rawAt(t, op.Data, c.path)))
		got, err := op.OpenField([]byte(c.spelled), c.mode, []byte(c.path), []byte(c.path))
		if c.opens {
			require.NoError(t, err, "%s %q", c.path, c.pt)
			require.Equal(t, c.pt, string(got))
			continue
		}
		requireCannotOpen(t, err, "%s %q opened", c.path, c.pt)
		require.Nil(t, got)
	}
}

// strictIat is the shape of SPEC.md part 1, 5.1; time.Parse decides the
// calendar.
var strictIat = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$`)

func iatHeader(iat string) string {
	return strings.Replace(canonicalHeader, `"iat":"2026-11-29T16:20:46.123Z"`, `"iat":"`+iat+`"`, 1)
}

// TestIssuedAtIsStrict: forms time.Parse takes for the layout
// 2006-01-02T15:04:05.000Z but the specification does not, spelled
// canonically (the canonical parser), with an escape in the string and in
// a non-canonical layout (the general parser), are parse errors.
func TestIssuedAtIsStrict(t *testing.T) {
	const good = "2026-11-29T16:20:46.123Z"
	bad := []string{
		"2026-11-29T16:20:46,123Z", // a comma before the milliseconds
		"2026-11-29T16:20:46.+12Z", // a sign among them
		"2026-11-29T16:20:46.+23Z",
		"2026-11-29T16:20:46,+12Z",
		"2026-11-29T16:20:46.-12Z",
		"2026-11-29T16:20:46.1_3Z", "2026-11-29T16:20:46.12 Z", "2026-11-29 16:20:46.123Z", "2026-11-29t16:20:46.123z",
		"2026-11-29T24:00:00.000Z", "2026-11-29T16:20:60.123Z", "2026-02-30T16:20:46.123Z", "2026-13-29T16:20:46.123Z",
		"2026-11-29T16:20:46.1234", "2026-11-29T16:20:46.123+00:00", "2026-11-29T16:20:46Z", "+026-11-29T16:20:46.123Z",
	}
	spellings := func(iat string) map[string]string {
		return map[string]string{
			"canonical": canonicalEnvelope(iatHeader(iat), `{}`, canonicalTag),
			// \u0054 is 'T': the same value, read by the general parser's
			// decoding path.
			"escaped": canonicalEnvelope(strings.Replace(iatHeader(iat), iat[:10]+"T", iat[:10]+`\u0054`, 1), `{}`, canonicalTag),
			"layout":  canonicalEnvelope(strings.Replace(iatHeader(iat), `"iat":"`, `"iat": "`, 1), `{}`, canonicalTag),
		}
	}
	for name, env := range spellings(good) {
		e, err := envelope.Parse([]byte(env))
		require.NoError(t, err, name)
		require.Equal(t, time.Date(2026, 11, 29, 16, 20, 46, 123e6, time.UTC), e.Header.IssuedAt)
	}
	for _, iat := range bad {
		for name, env := range spellings(iat) {
			if name == "escaped" && iat[10] != 'T' {
				continue
			}
			_, err := envelope.Parse([]byte(env))
			requireParseError(t, err, "%s iat %q accepted", name, iat)
		}
	}

	// Every single-byte change of a valid iat: accepted exactly when it has
	// the specified shape and is a real date and time.
	for i := range len(good) {
		for c := byte(0x20); c < 0x7f; c++ {
			if c == '"' || c == '\\' {
				continue
			}
			b := []byte(good)
			b[i] = c
			iat := string(b)
			_, perr := time.Parse("2006-01-02T15:04:05.000Z", iat)
			want := perr == nil && strictIat.MatchString(iat)
			for name, env := range spellings(iat) {
				if name == "escaped" && iat[10] != 'T' {
					continue
				}
				_, err := envelope.Parse([]byte(env))
				require.Equal(t, want, err == nil, "%s iat %q: %v", name, iat, err)
			}
		}
	}
}

// TestOpenRefusesLenientIssuedAt: an authentic envelope (its tag verifies)
// whose iat has a comma before the milliseconds is still refused.
func TestOpenRefusesLenientIssuedAt(t *testing.T) {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	o, err := envelope.NewOpener(envelope.OpenerConfig{Self: "financial-service", Identity: fixedIdentity{k}})
	require.NoError(t, err)
	for _, iat := range []string{"2026-11-29T16:20:46.123Z", "2026-11-29T16:20:46,123Z", "2026-11-29T16:20:46.+12Z"} {
		hdr := `{"v":1,"id":"019ad0b0-5d2b-7c3e-9f00-0123456789ab","snd":"frontend","rcp":"financial-service","typ":"T",` +
			`"iat":"` + iat + `","key":{"alg":"aead","kid":"k1","wk":"AA"}}`
		tag := gcmSeal(t, k, nil, lp("xsvc/v1/envelope", hdr, `{}`))
		_, err := o.Open([]byte(canonicalEnvelope(hdr, `{}`, base64.RawURLEncoding.EncodeToString(tag))))
		if iat[19] == '.' && iat[20] != '+' {
			require.NoError(t, err)
		} else {
			requireParseError(t, err, iat)
		}
	}
}

// policyIdentity is a custom Identity with a policy: revoked key ids and
// refused senders. It applies the policy in Unwrap and, through CheckKey,
// before the opener's cache. It counts both.
type policyIdentity struct {
	a *subtle.AESGCM

	mu      sync.Mutex
	revoked map[string]bool
	refused map[string]bool
	failing error // returned by CheckKey when set: a policy store that is down

	checks, unwraps atomic.Int64
}

func (p *policyIdentity) policy(k envelope.KeyInfo, sender string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failing != nil {
		return p.failing
	}
	if p.revoked[k.KeyID] {
		return &envelope.KeyRetiredError{KeyID: k.KeyID}
	}
	if p.refused[sender] {
		return envelope.ErrCannotOpen
	}
	return nil
}

func (p *policyIdentity) CheckKey(k envelope.KeyInfo, sender string) error {
	p.checks.Add(1)
	return p.policy(k, sender)
}

func (p *policyIdentity) Unwrap(k envelope.KeyInfo, w []byte) ([]byte, error) {
	p.unwraps.Add(1)
	// Unwrap has no sender argument; the wrap context holds it, but the
	// check that matters runs in CheckKey.
	if err := p.policy(k, ""); err != nil {
		return nil, err
	}
	return p.a.Decrypt(k.Wrapped, w)
}

// TestCustomIdentityPolicyPrecedesCache: a custom identity revokes a key id
// (or refuses a sender) after a first open that cached the data key; the
// next open of a message under that cached key must be refused all the same.
func TestCustomIdentityPolicyPrecedesCache(t *testing.T) {
	a, err := subtle.NewAESGCM(make([]byte, 32))
	require.NoError(t, err)
	r, err := envelope.NewAEADRecipient("kms-key-1", a)
	require.NoError(t, err)
	seal := func(s *envelope.Sealer) []byte {
		m, err := s.Begin(typeName)
		require.NoError(t, err)
		env, err := m.Finish([]byte(`{}`))
		require.NoError(t, err)
		return env
	}
	newSealer := func(snd string) *envelope.Sealer {
		s, err := envelope.NewSealer(envelope.SealerConfig{Sender: snd, Recipient: recipient, To: r})
		require.NoError(t, err)
		return s
	}
	s := newSealer(sender)
	env1, env2 := seal(s), seal(s) // one data key, reused
	other := newSealer("analytics-service")
	env3, env4 := seal(other), seal(other)

	id := &policyIdentity{a: a, revoked: map[string]bool{}, refused: map[string]bool{}}
	o, err := envelope.NewOpener(envelope.OpenerConfig{Self: recipient, Identity: id})
	require.NoError(t, err)

	_, err = o.Open(env1)
	require.NoError(t, err)
	_, err = o.Open(env2) // a cache hit: no Unwrap
	require.NoError(t, err)
	require.EqualValues(t, 1, id.unwraps.Load(), "the second open did not use the cache")

	// Per-sender rule, with the data key of that sender cached.
	_, err = o.Open(env3)
	require.NoError(t, err)
	id.mu.Lock()
	id.refused["analytics-service"] = true
	id.mu.Unlock()
	_, err = o.Open(env4)
	requireCannotOpen(t, err, "a refused sender's message opened from the cache")
	_, err = o.Open(env2)
	require.NoError(t, err, "another sender is not affected")

	// Revocation of the key id, with its data keys cached.
	id.mu.Lock()
	id.revoked["kms-key-1"] = true
	id.mu.Unlock()
	unwraps := id.unwraps.Load()
	for _, env := range [][]byte{env1, env2} {
		op, err := o.Open(env)
		requireKeyRetired(t, err, "kms-key-1", "a revoked key's message opened from the cache")
		require.Nil(t, op)
	}
	require.Equal(t, unwraps, id.unwraps.Load(), "refused before the cache, without unwrapping")
	require.EqualValues(t, 7, id.checks.Load(), "CheckKey runs on every open")

	// A failure of the policy itself (not a refusal of this package) is
	// ErrCannotOpen, its cause reachable but not in the text.
	id.mu.Lock()
	id.revoked = map[string]bool{}
	id.failing = errors.New("policy store unreachable: secret-detail")
	id.mu.Unlock()
	_, err = o.Open(env1)
	requireCannotOpen(t, err)
	require.ErrorIs(t, err, id.failing)
	require.NotContains(t, err.Error(), "secret-detail")
	require.Equal(t, envelope.ErrCannotOpen.Error(), err.Error())
}

// The identities of this package implement KeyChecker (their key status
// check before the cache), and the custom one above does too.
var (
	_ envelope.KeyChecker = (*policyIdentity)(nil)
	_ envelope.KeyChecker = (*envelope.HPKEIdentity)(nil)
	_ envelope.KeyChecker = (*envelope.AEADIdentity)(nil)
	_ envelope.KeyChecker = (*envelope.AEADKeysetIdentity)(nil)
)

// TestBuiltInKeyCheck: the exported check of the built-in identities
// answers as their Unwrap does for unknown and wrong-algorithm keys.
func TestBuiltInKeyCheck(t *testing.T) {
	k := sharedKeys()
	hid, err := envelope.NewHPKEIdentity(k.hpkePriv)
	require.NoError(t, err)
	aid, err := envelope.NewAEADKeysetIdentity(k.aead)
	require.NoError(t, err)
	a, err := subtle.NewAESGCM(make([]byte, 32))
	require.NoError(t, err)
	kid, err := envelope.NewAEADIdentity("k1", a)
	require.NoError(t, err)
	hp, err := k.hpkePriv.Primary()
	require.NoError(t, err)
	ap, err := k.aead.Primary()
	require.NoError(t, err)
	for _, c := range []struct {
		id   envelope.Identity
		key  envelope.KeyInfo
		want error
	}{
		{hid, envelope.KeyInfo{Alg: envelope.AlgHPKE, KeyID: fmtID(hp.KeyID())}, nil},
		{hid, envelope.KeyInfo{Alg: envelope.AlgAEAD, KeyID: fmtID(hp.KeyID())}, envelope.ErrCannotOpen},
		{hid, envelope.KeyInfo{Alg: envelope.AlgHPKE, KeyID: "1"}, envelope.ErrCannotOpen},
		{aid, envelope.KeyInfo{Alg: envelope.AlgAEAD, KeyID: fmtID(ap.KeyID())}, nil},
		{aid, envelope.KeyInfo{Alg: envelope.AlgAEAD, KeyID: "01"}, envelope.ErrCannotOpen},
		{kid, envelope.KeyInfo{Alg: envelope.AlgAEAD, KeyID: "k1"}, nil},
		{kid, envelope.KeyInfo{Alg: envelope.AlgAEAD, KeyID: "k2"}, envelope.ErrCannotOpen},
	} {
		err := c.id.(envelope.KeyChecker).CheckKey(c.key, sender)
		if c.want == nil {
			require.NoError(t, err, "%v %+v", c.id, c.key)
		} else {
			require.ErrorIs(t, err, c.want, "%v %+v", c.id, c.key)
		}
	}
}

// TestReuseCeiling: reuse bounds above the documented ceilings are refused,
// not clamped; the ceilings themselves are accepted.
func TestReuseCeiling(t *testing.T) {
	r, err := envelope.NewHPKERecipient(sharedKeys().hpkePub)
	require.NoError(t, err)
	cfg := func(reuse envelope.Reuse) envelope.SealerConfig {
		return envelope.SealerConfig{Sender: sender, Recipient: recipient, To: r, Reuse: reuse}
	}
	require.Equal(t, 1<<20, envelope.MaxReuseMessages)
	require.Equal(t, time.Hour, envelope.MaxReuseAge)
	for _, ok := range []envelope.Reuse{
		{MaxMessages: envelope.MaxReuseMessages, MaxAge: envelope.MaxReuseAge},
		{MaxMessages: 1, MaxAge: time.Millisecond},
		{},
	} {
		_, err := envelope.NewSealer(cfg(ok))
		require.NoError(t, err, "%+v", ok)
	}
	for _, bad := range []envelope.Reuse{
		{MaxMessages: envelope.MaxReuseMessages + 1},
		{MaxMessages: math.MaxInt},
		{MaxAge: envelope.MaxReuseAge + time.Nanosecond},
		{MaxAge: 24 * time.Hour, Disabled: true},
	} {
		s, err := envelope.NewSealer(cfg(bad))
		require.Error(t, err, "%+v", bad)
		require.Nil(t, s)
		require.Contains(t, err.Error(), "ceiling")
		// The rewrapper seals too: the same bounds.
		_, err = envelope.NewRewrapper(envelope.RewrapConfig{Self: recipient, Identity: fixedIdentity{make([]byte, 32)}, To: r, Reuse: bad})
		require.Error(t, err, "%+v", bad)
	}
}
