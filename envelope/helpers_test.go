package envelope_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/daead"
	"github.com/tink-crypto/tink-go/v2/hybrid"
	"github.com/tink-crypto/tink-go/v2/keyset"

	"github.com/lifenavigator/crossservice/envelope"
)

const (
	sender    = "frontend"
	recipient = "financial-service"
	typeName  = "accounts.Account"
)

// keys is one recipient's key material, as a test needs it.
type keys struct {
	hpkePriv, hpkePub *keyset.Handle
	aead              *keyset.Handle
	daead             *keyset.Handle
}

func newKeys(t testing.TB) *keys {
	t.Helper()
	k := &keys{}
	var err error
	k.hpkePriv, err = keyset.NewHandle(hybrid.DHKEM_X25519_HKDF_SHA256_HKDF_SHA256_AES_256_GCM_Key_Template())
	require.NoError(t, err)
	k.hpkePub, err = k.hpkePriv.Public()
	require.NoError(t, err)
	k.aead, err = keyset.NewHandle(aead.AES256GCMKeyTemplate())
	require.NoError(t, err)
	k.daead, err = keyset.NewHandle(daead.AESSIVKeyTemplate())
	require.NoError(t, err)
	return k
}

// shared keys: key generation is not what these tests are about.
var sharedKeys = sync.OnceValue(func() *keys { return newKeys(panicTB{}) })

type panicTB struct{ testing.TB }

func (panicTB) Helper() {}
func (panicTB) Errorf(format string, args ...any) {
	panic("key setup failed")
}
func (panicTB) FailNow() { panic("key setup failed") }

func hpkeSealer(t testing.TB, k *keys, mod func(*envelope.SealerConfig)) *envelope.Sealer {
	t.Helper()
	r, err := envelope.NewHPKERecipient(k.hpkePub)
	require.NoError(t, err)
	cfg := envelope.SealerConfig{Sender: sender, Recipient: recipient, To: r, Deterministic: k.daead}
	if mod != nil {
		mod(&cfg)
	}
	s, err := envelope.NewSealer(cfg)
	require.NoError(t, err)
	return s
}

func hpkeOpener(t testing.TB, k *keys, mod func(*envelope.OpenerConfig)) *envelope.Opener {
	t.Helper()
	id, err := envelope.NewHPKEIdentity(k.hpkePriv)
	require.NoError(t, err)
	cfg := envelope.OpenerConfig{Self: recipient, Identity: id, Deterministic: k.daead}
	if mod != nil {
		mod(&cfg)
	}
	o, err := envelope.NewOpener(cfg)
	require.NoError(t, err)
	return o
}

// field is one sensitive value of the test document.
type field struct {
	path, schemaPath string
	mode             envelope.Mode
	plain            string // JSON
}

var docFields = []field{
	{"/owner", "/owner", envelope.Random, `"Jane Doe"`},
	{"/ssn", "/ssn", envelope.Deterministic, `"123456789"`},
	{"/owners/0/name", "/owners/*/name", envelope.Random, `"John Roe"`},
	{"/owners/1/name", "/owners/*/name", envelope.Random, `"Ann Poe"`},
	{"/tags/a~1b", "/tags/*", envelope.Deterministic, `{"x":[1,2]}`},
}

// sealDoc seals the test document: clear members around the fields of
// docFields, placed where their paths say.
func sealDoc(t testing.TB, s *envelope.Sealer) []byte {
	t.Helper()
	m, err := s.Begin(typeName)
	require.NoError(t, err)
	mk := func(i int) []byte {
		f := docFields[i]
		b, err := m.AppendField(nil, f.mode, []byte(f.path), []byte(f.schemaPath), []byte(f.plain))
		require.NoError(t, err)
		return b
	}
	var d bytes.Buffer
	d.WriteString(`{"id":"acc-1","owner":`)
	d.Write(mk(0))
	d.WriteString(`,"ssn":`)
	d.Write(mk(1))
	d.WriteString(`,"balance":12.5,"owners":[{"name":`)
	d.Write(mk(2))
	d.WriteString(`},{"name":`)
	d.Write(mk(3))
	d.WriteString(`}],"tags":{"a/b":`)
	d.Write(mk(4))
	d.WriteString(`}}`)
	env, err := m.Finish(d.Bytes())
	require.NoError(t, err)
	return env
}

// rawAt returns the raw JSON value at an RFC 6901 pointer of doc.
func rawAt(t testing.TB, doc []byte, ptr string) []byte {
	t.Helper()
	cur := json.RawMessage(doc)
	for _, tok := range strings.Split(ptr, "/")[1:] {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		if bytes.HasPrefix(bytes.TrimSpace(cur), []byte("[")) {
			var a []json.RawMessage
			require.NoError(t, json.Unmarshal(cur, &a))
			i, err := strconv.Atoi(tok)
			require.NoError(t, err)
			require.Less(t, i, len(a))
			cur = a[i]
			continue
		}
		var o map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(cur, &o))
		v, ok := o[tok]
		require.True(t, ok, "no member %q", tok)
		cur = v
	}
	return cur
}

// openDoc opens env and every field of docFields, returning the plaintexts.
func openDoc(t testing.TB, o *envelope.Opener, env []byte) (*envelope.Opened, []string) {
	t.Helper()
	op, err := o.Open(env)
	require.NoError(t, err)
	var out []string
	for _, f := range docFields {
		pt, err := op.OpenField(rawAt(t, op.Data, f.path), f.mode, []byte(f.path), []byte(f.schemaPath))
		require.NoError(t, err, f.path)
		out = append(out, string(pt))
	}
	return op, out
}

func plains() []string {
	var out []string
	for _, f := range docFields {
		out = append(out, f.plain)
	}
	return out
}

// countingRecipient counts wraps.
type countingRecipient struct {
	envelope.Recipient
	n atomic.Int64
}

func (c *countingRecipient) Wrap(k, w []byte) (envelope.KeyInfo, error) {
	c.n.Add(1)
	return c.Recipient.Wrap(k, w)
}

// countingIdentity counts unwraps. It hides the wrapped identity's own key
// check, so every call really reaches Unwrap.
type countingIdentity struct {
	id envelope.Identity
	n  atomic.Int64
}

func (c *countingIdentity) Unwrap(k envelope.KeyInfo, w []byte) ([]byte, error) {
	c.n.Add(1)
	return c.id.Unwrap(k, w)
}

// fakeClock is a settable clock, safe for concurrent use.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 29, 16, 20, 46, 123456789, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// requireCannotOpen checks a plain refusal: ErrCannotOpen, and neither a
// parse error nor a retired key.
func requireCannotOpen(t testing.TB, err error, msgAndArgs ...any) {
	t.Helper()
	require.ErrorIs(t, err, envelope.ErrCannotOpen, msgAndArgs...)
	var pe *envelope.ParseError
	require.False(t, errors.As(err, &pe), msgAndArgs...)
	require.NotErrorIs(t, err, envelope.ErrKeyRetired, msgAndArgs...)
}

func requireParseError(t testing.TB, err error, msgAndArgs ...any) {
	t.Helper()
	var pe *envelope.ParseError
	require.ErrorAs(t, err, &pe, msgAndArgs...)
	require.ErrorIs(t, err, envelope.ErrCannotOpen, msgAndArgs...)
}

func requireKeyRetired(t testing.TB, err error, kid string, msgAndArgs ...any) {
	t.Helper()
	var kr *envelope.KeyRetiredError
	require.ErrorAs(t, err, &kr, msgAndArgs...)
	if kid != "" {
		require.Equal(t, kid, kr.KeyID, msgAndArgs...)
	}
	require.ErrorIs(t, err, envelope.ErrCannotOpen, msgAndArgs...)
	require.ErrorIs(t, err, envelope.ErrKeyRetired, msgAndArgs...)
}

// sprint formats v the ways a logger might.
func sprint(v any) string { return fmt.Sprintf("%v %+v %s", v, v, v) }
