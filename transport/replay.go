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

// DefaultReplayEntries is MemoryReplayConfig.MaxEntries' zero value.
const DefaultReplayEntries = 250_000

// MemoryReplayConfig configures [NewMemoryReplayStore].
type MemoryReplayConfig struct {
	// MaxEntries bounds unexpired entries (zero: 250,000, about 12 MB).
	// Size it above peak requests per second × (Window + FutureSkew):
	// 250,000 covers about 400 requests/s with the default 10-minute TTL.
	// Negative is invalid.
	MaxEntries int
	// Clock returns the current time (nil: time.Now).
	Clock func() time.Time
}

// MemoryReplayStore is a bounded in-process [ReplayStore] for a single
// replica. Expired entries are pruned on every call, oldest first, in O(1)
// amortised time; when MaxEntries unexpired entries are held it refuses with
// [ErrReplayStoreFull] instead of forgetting one early. Safe for concurrent
// use. Several replicas behind one load balancer need a shared store.
//
// Entries expire in insertion order: an entry whose ttl would end before the
// previous entry's is held until the previous one expires. Holding an id
// longer than asked is safe; forgetting it earlier never happens.
//
// Keys are held as a 128-bit keyed hash (hash/maphash, two random seeds
// per store), so the map holds no pointers for the garbage collector to scan
// and an entry costs about 48 bytes. Two different keys share a hash with
// probability 2^-128; the only effect would be a genuine request refused as
// a replay, never a replay admitted.
type MemoryReplayStore struct {
	mu    sync.Mutex
	max   int
	clock func() time.Time
	seeds [2]maphash.Seed
	held  map[replayHash]struct{}
	queue []replayItem // ring buffer of held keys, expiries non-decreasing from head
	head  int
	n     int
}

type replayHash [2]uint64

type replayItem struct {
	exp int64
	key replayHash
}

var _ ReplayStore = (*MemoryReplayStore)(nil)

// NewMemoryReplayStore returns an empty store.
func NewMemoryReplayStore(cfg MemoryReplayConfig) (*MemoryReplayStore, error) {
	if cfg.MaxEntries < 0 {
		return nil, fmt.Errorf("transport: MemoryReplayConfig.MaxEntries %d < 0: %w", cfg.MaxEntries, ErrInvalidConfig)
	}
	if cfg.MaxEntries == 0 {
		cfg.MaxEntries = DefaultReplayEntries
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	return &MemoryReplayStore{max: cfg.MaxEntries, clock: cfg.Clock,
		seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
		held:  make(map[replayHash]struct{})}, nil
}

// Consume implements [ReplayStore]. ttl must be positive.
func (s *MemoryReplayStore) Consume(_ context.Context, key string, ttl time.Duration) (bool, error) {
	if ttl <= 0 {
		return false, fmt.Errorf("transport: replay ttl %v: %w", ttl, ErrInvalidConfig)
	}
	return s.consume(replayHash{maphash.String(s.seeds[0], key), maphash.String(s.seeds[1], key)}, ttl)
}

func maphashKey(s *MemoryReplayStore, key []byte) replayHash {
	return replayHash{maphash.Bytes(s.seeds[0], key), maphash.Bytes(s.seeds[1], key)}
}

func (s *MemoryReplayStore) consume(k replayHash, ttl time.Duration) (bool, error) {
	if ttl <= 0 {
		return false, fmt.Errorf("transport: replay ttl %v: %w", ttl, ErrInvalidConfig)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock().UnixNano()
	s.prune(now)
	if s.n >= s.max {
		if _, held := s.held[k]; held {
			return false, nil // a replay is reported as such even when full
		}
		return false, ErrReplayStoreFull
	}
	n := len(s.held)
	s.held[k] = struct{}{} // one probe for the common, fresh case
	if len(s.held) == n {
		return false, nil // already held
	}
	e := now + int64(ttl)
	if s.n > 0 {
		e = max(e, s.queue[(s.head+s.n-1)%len(s.queue)].exp)
	}
	s.push(replayItem{exp: e, key: k})
	return true, nil
}

// Len returns the number of unexpired entries.
func (s *MemoryReplayStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prune(s.clock().UnixNano())
	return s.n
}

// prune drops entries whose expiry is at or before now: an entry is held
// for (insert, insert+ttl].
func (s *MemoryReplayStore) prune(now int64) {
	for s.n > 0 && s.queue[s.head].exp <= now {
		delete(s.held, s.queue[s.head].key)
		s.queue[s.head] = replayItem{}
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
