package featurecache

import (
	"container/list"
	"context"
	"strings"
	"sync"

	"golang.org/x/sync/singleflight"
)

// LRU keeps decoded caches in memory, bounded by their decoded bytes (Features.Bytes), evicting the least
// recently used. Concurrent loads of one key share a single load. Cached Features are shared between
// callers: treat them as read-only.
//
// The well-known Go LRUs bound entry counts (hashicorp/golang-lru) or admit by sampled frequency
// (ristretto, otter); a subject's cache is 0.2–2 MB depending on its reference count, so a byte bound with
// plain recency is what fits, and it is this small.
type LRU struct {
	mu       sync.Mutex
	maxBytes int64
	used     int64
	order    *list.List // front = most recent; values are *lruEntry
	items    map[string]*list.Element
	removals uint64 // counts Removes: a load that raced one does not store its result (no resurrection)
	stats    LRUStats
	loads    singleflight.Group
}

type lruEntry struct {
	key string
	f   *Features
}

// LRUStats counts what the cache did.
type LRUStats struct {
	Hits      int64 `json:"hits"`
	Misses    int64 `json:"misses"`
	Evictions int64 `json:"evictions"`
	Entries   int   `json:"entries"`
	Bytes     int64 `json:"bytes"`
	MaxBytes  int64 `json:"max_bytes"`
}

// NewLRU makes a cache holding at most maxBytes of decoded features (≤ 0 keeps nothing).
func NewLRU(maxBytes int64) *LRU {
	return &LRU{maxBytes: maxBytes, order: list.New(), items: map[string]*list.Element{}}
}

// Get returns the cache under key and marks it recently used.
func (c *LRU) Get(key string) (*Features, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.getLocked(key)
}

func (c *LRU) getLocked(key string) (*Features, bool) {
	if el, ok := c.items[key]; ok {
		c.order.MoveToFront(el)
		c.stats.Hits++
		return el.Value.(*lruEntry).f, true
	}
	c.stats.Misses++
	return nil, false
}

// Add stores f under key, evicting the least recently used entries until it fits. An entry larger than the
// whole bound is not kept.
func (c *LRU) Add(key string, f *Features) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addLocked(key, f)
}

func (c *LRU) addLocked(key string, f *Features) {
	c.removeLocked(key)
	size := f.Bytes()
	if size > c.maxBytes {
		return
	}
	for c.used+size > c.maxBytes {
		oldest := c.order.Back()
		c.removeLocked(oldest.Value.(*lruEntry).key)
		c.stats.Evictions++
	}
	c.items[key] = c.order.PushFront(&lruEntry{key: key, f: f})
	c.used += size
}

// Remove drops key (and makes any load of it in flight not store its result).
func (c *LRU) Remove(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeLocked(key)
	c.removals++
}

// RemovePrefix drops every key starting with prefix, as Remove does.
func (c *LRU) RemovePrefix(prefix string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for key := range c.items {
		if strings.HasPrefix(key, prefix) {
			c.removeLocked(key)
		}
	}
	c.removals++
}

func (c *LRU) removeLocked(key string) {
	if el, ok := c.items[key]; ok {
		c.used -= el.Value.(*lruEntry).f.Bytes()
		c.order.Remove(el)
		delete(c.items, key)
	}
}

// GetOrLoad returns the cache under key, calling load on a miss; concurrent misses of one key share one
// load. hit says whether it was already in memory.
func (c *LRU) GetOrLoad(ctx context.Context, key string, load func(ctx context.Context) (*Features, error)) (f *Features, hit bool, err error) {
	c.mu.Lock()
	if f, ok := c.getLocked(key); ok {
		c.mu.Unlock()
		return f, true, nil
	}
	removals := c.removals
	c.mu.Unlock()
	v, err, _ := c.loads.Do(key, func() (any, error) {
		c.mu.Lock()
		el, ok := c.items[key] // a load that finished between the miss and here
		c.mu.Unlock()
		if ok {
			return el.Value.(*lruEntry).f, nil
		}
		// The shared load must not die with the first caller's request.
		f, err := load(context.WithoutCancel(ctx))
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		if c.removals == removals {
			c.addLocked(key, f)
		}
		c.mu.Unlock()
		return f, nil
	})
	if err != nil {
		return nil, false, err
	}
	return v.(*Features), false, nil
}

// Stats returns the counters and the current size.
func (c *LRU) Stats() LRUStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Entries, s.Bytes, s.MaxBytes = len(c.items), c.used, c.maxBytes
	return s
}
