package envelope

import (
	"container/list"
	"sync"
	"time"

	"github.com/tink-crypto/tink-go/v2/aead/subtle"
)

// Cache configures the opener's cache of unwrapped data keys. A hit skips
// the unwrap (an HPKE decapsulation or a KMS call), which is what makes the
// sender's key reuse ([Reuse]) pay off. The cache holds data keys in memory
// for up to TTL; the tag is still verified on every message.
//
// A hit skips the Identity's Unwrap altogether. Whatever an Identity decides
// only in Unwrap (a revoked key, a rule per sender, a KMS key policy or
// grant) is not consulted again, for up to TTL, for the messages sealed
// under a data key already cached: with the default sender reuse, up to
// 1000 messages per data key. A check that must hold for every message
// belongs in [KeyChecker], which the opener calls before the cache; the
// identities of this package make their key status check (unknown,
// disabled, destroyed) there. A KMS-backed [NewAEADIdentity] cannot see a
// revocation inside the KMS before its next Unwrap: if that delay matters,
// lower TTL or set Disabled.
type Cache struct {
	Size     int           // maximum number of keys; 0: 1024; negative: an error
	TTL      time.Duration // how long a key stays usable after it was unwrapped; 0: 10 minutes; negative: an error
	Disabled bool          // true: every Open unwraps
}

const (
	defaultCacheSize = 1024
	defaultCacheTTL  = 10 * time.Minute
)

// keyCache is a mutex-protected LRU with a TTL, keyed by the bytes of
// appendCacheKey.
type keyCache struct {
	mu   sync.Mutex
	size int
	ttl  time.Duration
	ll   list.List // front: most recently used *cacheEntry
	m    map[string]*list.Element
}

type cacheEntry struct {
	key     string
	aead    *subtle.AESGCM
	expires time.Time
}

func newKeyCache(size int, ttl time.Duration) *keyCache {
	c := &keyCache{size: size, ttl: ttl, m: make(map[string]*list.Element)}
	c.ll.Init()
	return c
}

func (c *keyCache) get(k []byte, now time.Time) *subtle.AESGCM {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.m[string(k)] // a lookup by string(k) does not copy k
	if !ok {
		return nil
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.expires) {
		c.ll.Remove(el)
		delete(c.m, e.key)
		return nil
	}
	c.ll.MoveToFront(el)
	return e.aead
}

func (c *keyCache) put(k []byte, a *subtle.AESGCM, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[string(k)]; ok {
		e := el.Value.(*cacheEntry)
		e.aead, e.expires = a, now.Add(c.ttl)
		c.ll.MoveToFront(el)
		return
	}
	for c.ll.Len() >= c.size {
		oldest := c.ll.Back()
		c.ll.Remove(oldest)
		delete(c.m, oldest.Value.(*cacheEntry).key)
	}
	key := string(k)
	c.m[key] = c.ll.PushFront(&cacheEntry{key: key, aead: a, expires: now.Add(c.ttl)})
}
