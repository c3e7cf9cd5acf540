package envelope_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lifenavigator/crossservice/envelope"
)

func countingSealer(t *testing.T, k *keys, clock *fakeClock, reuse envelope.Reuse) (*envelope.Sealer, *countingRecipient) {
	t.Helper()
	r, err := envelope.NewHPKERecipient(k.hpkePub)
	require.NoError(t, err)
	cr := &countingRecipient{Recipient: r}
	s, err := envelope.NewSealer(envelope.SealerConfig{
		Sender: sender, Recipient: recipient, To: cr, Reuse: reuse, Clock: clock.Now,
	})
	require.NoError(t, err)
	return s, cr
}

func wkOf(t *testing.T, s *envelope.Sealer) string {
	t.Helper()
	m, err := s.Begin(typeName)
	require.NoError(t, err)
	return string(m.Header().Key.Wrapped)
}

func TestReuseCount(t *testing.T) {
	clock := newFakeClock()
	s, cr := countingSealer(t, sharedKeys(), clock, envelope.Reuse{MaxMessages: 3, MaxAge: time.Hour})
	var wks []string
	for range 7 {
		wks = append(wks, wkOf(t, s))
	}
	require.Equal(t, int64(3), cr.n.Load())
	require.Equal(t, wks[0], wks[1])
	require.Equal(t, wks[0], wks[2])
	require.NotEqual(t, wks[2], wks[3])
	require.Equal(t, wks[3], wks[5])
	require.NotEqual(t, wks[5], wks[6])
}

func TestReuseAge(t *testing.T) {
	clock := newFakeClock()
	s, cr := countingSealer(t, sharedKeys(), clock, envelope.Reuse{MaxMessages: 1000, MaxAge: time.Minute})
	a := wkOf(t, s)
	clock.Advance(59 * time.Second)
	require.Equal(t, a, wkOf(t, s))
	clock.Advance(time.Second) // age == MaxAge: too old
	b := wkOf(t, s)
	require.NotEqual(t, a, b)
	require.Equal(t, int64(2), cr.n.Load())
	// A clock that goes backwards also retires the key.
	clock.Advance(-time.Hour)
	require.NotEqual(t, b, wkOf(t, s))
	require.Equal(t, int64(3), cr.n.Load())
}

func TestReuseDefaults(t *testing.T) {
	clock := newFakeClock()
	s, cr := countingSealer(t, sharedKeys(), clock, envelope.Reuse{})
	a := wkOf(t, s)
	for range 998 {
		wkOf(t, s)
	}
	require.Equal(t, a, wkOf(t, s), "1000th message still on the first key")
	require.NotEqual(t, a, wkOf(t, s), "1001st on a new key")
	c := wkOf(t, s)
	clock.Advance(5*time.Minute - time.Millisecond)
	require.Equal(t, c, wkOf(t, s))
	clock.Advance(time.Millisecond)
	require.NotEqual(t, c, wkOf(t, s))
	require.Equal(t, int64(3), cr.n.Load())
}

func TestReuseDisabled(t *testing.T) {
	clock := newFakeClock()
	s, cr := countingSealer(t, sharedKeys(), clock, envelope.Reuse{Disabled: true})
	seen := map[string]bool{}
	for range 5 {
		wk := wkOf(t, s)
		require.False(t, seen[wk])
		seen[wk] = true
	}
	require.Equal(t, int64(5), cr.n.Load())
}

func TestSealerConcurrent(t *testing.T) {
	k := sharedKeys()
	clock := newFakeClock()
	s, cr := countingSealer(t, k, clock, envelope.Reuse{MaxMessages: 10, MaxAge: time.Hour})
	o := hpkeOpener(t, k, nil)
	const goroutines, each = 8, 25
	ids := make(chan string, goroutines*each)
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range each {
				m, err := s.Begin(typeName)
				if err != nil {
					t.Error(err)
					return
				}
				f, err := m.AppendField([]byte(`{"a":`), envelope.Random, []byte("/a"), []byte("/a"), []byte(`1`))
				if err != nil {
					t.Error(err)
					return
				}
				env, err := m.Finish(append(f, '}'))
				if err != nil {
					t.Error(err)
					return
				}
				op, err := o.Open(env)
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := op.OpenField(rawAt(t, op.Data, "/a"), envelope.Random, []byte("/a"), []byte("/a")); err != nil {
					t.Error(err)
				}
				ids <- op.Header.ID
			}
		})
	}
	wg.Wait()
	close(ids)
	seen := map[string]bool{}
	for id := range ids {
		require.False(t, seen[id], "duplicate message id")
		seen[id] = true
	}
	require.Len(t, seen, goroutines*each)
	require.Equal(t, int64(goroutines*each/10), cr.n.Load(), "each key used exactly MaxMessages times")
}

func countingOpener(t *testing.T, k *keys, clock *fakeClock, cache envelope.Cache) (*envelope.Opener, *countingIdentity) {
	t.Helper()
	id, err := envelope.NewHPKEIdentity(k.hpkePriv)
	require.NoError(t, err)
	ci := &countingIdentity{id: id}
	o, err := envelope.NewOpener(envelope.OpenerConfig{
		Self: recipient, Identity: ci, Deterministic: k.daead, Cache: cache, Clock: clock.Now,
	})
	require.NoError(t, err)
	return o, ci
}

func TestCacheHitSkipsUnwrap(t *testing.T) {
	k := sharedKeys()
	clock := newFakeClock()
	s := hpkeSealer(t, k, nil) // reuse on: messages share one wrapped key
	o, ci := countingOpener(t, k, clock, envelope.Cache{})
	for range 5 {
		_, got := openDoc(t, o, sealDoc(t, s))
		require.Equal(t, plains(), got)
	}
	require.Equal(t, int64(1), ci.n.Load())

	// TTL: an entry expires.
	clock.Advance(10*time.Minute - time.Nanosecond)
	openDoc(t, o, sealDoc(t, s))
	require.Equal(t, int64(1), ci.n.Load())
	clock.Advance(time.Nanosecond)
	openDoc(t, o, sealDoc(t, s))
	require.Equal(t, int64(2), ci.n.Load())

	// Disabled: every message unwraps.
	o, ci = countingOpener(t, k, clock, envelope.Cache{Disabled: true})
	for range 3 {
		openDoc(t, o, sealDoc(t, s))
	}
	require.Equal(t, int64(3), ci.n.Load())
}

func TestCacheBounded(t *testing.T) {
	k := sharedKeys()
	clock := newFakeClock()
	s := hpkeSealer(t, k, func(c *envelope.SealerConfig) { c.Reuse.Disabled = true })
	o, ci := countingOpener(t, k, clock, envelope.Cache{Size: 2, TTL: time.Hour})
	a, b, c := sealDoc(t, s), sealDoc(t, s), sealDoc(t, s)
	open := func(env []byte) {
		_, err := o.Open(env)
		require.NoError(t, err)
	}
	open(a)
	open(b)
	open(c) // evicts a, the least recently used
	require.Equal(t, int64(3), ci.n.Load())
	open(c)
	open(b)
	require.Equal(t, int64(3), ci.n.Load(), "b and c cached")
	open(a)
	require.Equal(t, int64(4), ci.n.Load(), "a was evicted")
	open(b) // b was used more recently than c, so c went
	require.Equal(t, int64(4), ci.n.Load())
	open(c)
	require.Equal(t, int64(5), ci.n.Load())
}

func TestCacheDoesNotOutliveRefusal(t *testing.T) {
	// A failed unwrap is never cached: a forged wk is unwrapped (and
	// refused) every time.
	k := sharedKeys()
	clock := newFakeClock()
	s := hpkeSealer(t, k, nil)
	o, ci := countingOpener(t, k, clock, envelope.Cache{})
	env := sealDoc(t, s)
	bad := reheader(t, env, func(h *envelope.Header) { h.Key.Wrapped = flip(h.Key.Wrapped, 20) })
	for range 3 {
		_, err := o.Open(bad)
		requireCannotOpen(t, err)
	}
	require.Equal(t, int64(3), ci.n.Load())
}
