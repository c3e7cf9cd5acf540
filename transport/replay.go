package transport

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
	"time"
)

// ReplayStore records request identities for a time. Consume must be atomic:
// of any number of concurrent calls with the same key while it is held,
// exactly one reports fresh. It maps onto one Redis command,
// SET key 1 NX PX ttl-in-ms (fresh = the SET happened).
//
// A store that cannot answer returns an error and the verifier fails
// closed (503). A store must never report fresh for a key it still holds,
// so it may refuse (error) but never evict an unexpired key to make room.
type ReplayStore interface {
	Consume(ctx context.Context, key string, ttl time.Duration) (fresh bool, err error)
}

// CallerReplayStore is a [ReplayStore] that also knows which verified caller
// a key is consumed for, so that it can bound each caller's share: the
// verifier calls ConsumeFor instead of Consume when its store implements
// it. The key alone decides freshness (the legacy replay key does not name
// the caller, on purpose); the caller only decides whose share an entry
// counts against. A caller over its share gets an error wrapping
// [ErrReplayStoreFull] (503 replay_store_full) for its new keys only.
type CallerReplayStore interface {
	ReplayStore
	ConsumeFor(ctx context.Context, caller, key string, ttl time.Duration) (fresh bool, err error)
}

// DefaultReplayEntries is MemoryReplayConfig.MaxEntries' zero value.
const DefaultReplayEntries = 250_000

// MemoryReplayConfig configures [NewMemoryReplayStore].
type MemoryReplayConfig struct {
	// MaxEntries bounds unexpired entries (zero: 250,000, about 22 MB).
	// Size it above peak requests per second × the verifier's replay ttl
	// (Window + FutureSkew + 1 ms): 250,000 covers about 400 requests/s
	// with the default 10-minute ttl. Negative is invalid.
	MaxEntries int
	// MaxEntriesPerCaller bounds the unexpired entries one caller may hold
	// through [MemoryReplayStore.ConsumeFor], which the verifier uses (zero:
	// MaxEntries / 4, at least 1). A caller that sends more authentic
	// requests than that per ttl gets 503 replay_store_full for its new
	// requests, and the others keep at least MaxEntries − MaxEntriesPerCaller
	// entries: one flooding caller (the replay check runs before the rate
	// limit, so the limit does not stop it) cannot lock the others out. With
	// the defaults one caller may sustain about 100 requests/s; a service
	// with one dominant caller sizes MaxEntries to 4 × that caller's peak,
	// or raises this bound (MaxEntries itself: no per-caller bound). The
	// store a verifier makes for itself (Config.ReplayStore nil) gives each
	// of its n callers MaxEntries / min(n, 4): the whole store to a sole
	// caller, half each to two, a third each to three.
	// Negative or above MaxEntries is invalid. Consume, which names no
	// caller, is bounded by MaxEntries only.
	MaxEntriesPerCaller int
	// Clock returns the current time (nil: time.Now).
	Clock func() time.Time
}

// MemoryReplayStore is a bounded in-process [ReplayStore] for a single
// replica. Expired entries are pruned on every call, oldest first, in O(1)
// amortised time; when MaxEntries unexpired entries are held, or the caller
// holds MaxEntriesPerCaller, it refuses with [ErrReplayStoreFull] instead of
// forgetting one early. Safe for concurrent use. Several replicas behind
// one load balancer need a shared store.
//
// Entries expire in insertion order: an entry whose ttl would end before the
// previous entry's is held until the previous one expires. Holding an id
// longer than asked is safe; forgetting it earlier never happens.
//
// Keys are held as a 128-bit keyed hash (hash/maphash, two random seeds
// per store), so the map and the queue hold no pointers for the garbage
// collector to scan, and an entry costs at most about 90 bytes (map slot and
// queue item, with the slack of their growth). Two different keys share a hash with
// probability 2^-128; the only effect would be a genuine request refused as
// a replay, never a replay admitted.
type MemoryReplayStore struct {
	mu        sync.Mutex
	max       int
	perCaller int
	clock     func() time.Time
	seeds     [2]maphash.Seed
	held      map[replayHash]struct{}
	queue     []replayItem // ring buffer of held keys, expiries non-decreasing from head
	head      int
	n         int
	owners    map[string]int32 // caller → index in shares, while it holds entries
	shares    []replayShare
	free      []int32 // unused indexes of shares
}

type replayHash [2]uint64

type replayItem struct {
	exp   int64
	key   replayHash
	owner int32 // index in shares; noOwner for Consume
}

// replayShare counts the entries a caller holds.
type replayShare struct {
	caller string
	n      int
}

const noOwner = -1

// errCallerShareFull is what one caller over its share gets.
var errCallerShareFull = fmt.Errorf("%w: the caller holds its share (MaxEntriesPerCaller)", ErrReplayStoreFull)

var (
	_ ReplayStore       = (*MemoryReplayStore)(nil)
	_ CallerReplayStore = (*MemoryReplayStore)(nil)
)

// NewMemoryReplayStore returns an empty store.
func NewMemoryReplayStore(cfg MemoryReplayConfig) (*MemoryReplayStore, error) {
	if cfg.MaxEntries < 0 || cfg.MaxEntriesPerCaller < 0 {
		return nil, fmt.Errorf("transport: MemoryReplayConfig: MaxEntries %d or MaxEntriesPerCaller %d < 0: %w",
			cfg.MaxEntries, cfg.MaxEntriesPerCaller, ErrInvalidConfig)
	}
	if cfg.MaxEntries == 0 {
		cfg.MaxEntries = DefaultReplayEntries
	}
	if cfg.MaxEntriesPerCaller > cfg.MaxEntries {
		return nil, fmt.Errorf("transport: MemoryReplayConfig.MaxEntriesPerCaller %d above MaxEntries %d: %w",
			cfg.MaxEntriesPerCaller, cfg.MaxEntries, ErrInvalidConfig)
	}
	if cfg.MaxEntriesPerCaller == 0 {
		cfg.MaxEntriesPerCaller = max(1, cfg.MaxEntries/4)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	return &MemoryReplayStore{max: cfg.MaxEntries, perCaller: cfg.MaxEntriesPerCaller, clock: cfg.Clock,
		seeds:  [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
		held:   make(map[replayHash]struct{}),
		owners: make(map[string]int32)}, nil
}

// Consume implements [ReplayStore]. ttl must be positive. The entry counts
// against no caller's share, only against MaxEntries.
func (s *MemoryReplayStore) Consume(_ context.Context, key string, ttl time.Duration) (bool, error) {
	return s.consume(s.hash(key), "", false, ttl)
}

// ConsumeFor implements [CallerReplayStore]: Consume, the entry counting
// against caller's share (MaxEntriesPerCaller) until it expires.
func (s *MemoryReplayStore) ConsumeFor(_ context.Context, caller, key string, ttl time.Duration) (bool, error) {
	return s.consume(s.hash(key), caller, true, ttl)
}

func (s *MemoryReplayStore) hash(key string) replayHash {
	return replayHash{maphash.String(s.seeds[0], key), maphash.String(s.seeds[1], key)}
}

func maphashKey(s *MemoryReplayStore, key []byte) replayHash {
	return replayHash{maphash.Bytes(s.seeds[0], key), maphash.Bytes(s.seeds[1], key)}
}

func (s *MemoryReplayStore) consume(k replayHash, caller string, bounded bool, ttl time.Duration) (bool, error) {
	if ttl <= 0 {
		return false, fmt.Errorf("transport: replay ttl %v: %w", ttl, ErrInvalidConfig)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock().UnixNano()
	s.prune(now)
	owner, has := int32(noOwner), false
	if bounded {
		owner, has = s.owners[caller]
	}
	if s.n >= s.max || has && s.shares[owner].n >= s.perCaller {
		if _, held := s.held[k]; held {
			return false, nil // a replay is reported as such even when full
		}
		if s.n >= s.max {
			return false, ErrReplayStoreFull
		}
		return false, errCallerShareFull
	}
	n := len(s.held)
	s.held[k] = struct{}{} // one probe for the common, fresh case
	if len(s.held) == n {
		return false, nil // already held
	}
	if bounded && !has {
		owner = s.newShare(caller)
	}
	if owner != noOwner {
		s.shares[owner].n++
	}
	e := now + int64(ttl)
	if s.n > 0 {
		e = max(e, s.queue[(s.head+s.n-1)%len(s.queue)].exp)
	}
	s.push(replayItem{exp: e, key: k, owner: owner})
	return true, nil
}

func (s *MemoryReplayStore) newShare(caller string) int32 {
	var i int32
	if l := len(s.free); l > 0 {
		i, s.free = s.free[l-1], s.free[:l-1]
		s.shares[i] = replayShare{caller: caller}
	} else {
		i = int32(len(s.shares))
		s.shares = append(s.shares, replayShare{caller: caller})
	}
	s.owners[caller] = i
	return i
}

// Len returns the number of unexpired entries.
func (s *MemoryReplayStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prune(s.clock().UnixNano())
	return s.n
}

// prune drops entries whose expiry is at or before now: an entry is held
// for (insert, insert+ttl]. A caller's share is forgotten with its last
// entry, so the bookkeeping stays bounded by the callers holding entries.
func (s *MemoryReplayStore) prune(now int64) {
	for s.n > 0 && s.queue[s.head].exp <= now {
		it := &s.queue[s.head]
		delete(s.held, it.key)
		if o := it.owner; o != noOwner {
			sh := &s.shares[o]
			sh.n--
			if sh.n == 0 {
				delete(s.owners, sh.caller)
				*sh = replayShare{}
				s.free = append(s.free, o)
			}
		}
		*it = replayItem{}
		s.head = (s.head + 1) % len(s.queue)
		s.n--
	}
	if s.n == 0 {
		s.head = 0
		if len(s.queue) > 1024 {
			s.queue = nil // give memory back after a burst
		}
	}
}

func (s *MemoryReplayStore) push(it replayItem) {
	if s.n == len(s.queue) {
		q := make([]replayItem, max(64, 2*len(s.queue)))
		for i := range s.n {
			q[i] = s.queue[(s.head+i)%len(s.queue)]
		}
		s.queue, s.head = q, 0
	}
	s.queue[(s.head+s.n)%len(s.queue)] = it
	s.n++
}
