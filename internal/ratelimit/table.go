package ratelimit

import "sync"

// A table is a bounded, sharded map with per-shard LRU order. It is the
// memory limiter's store: sharding keeps lock contention low on the hot
// path, and the LRU list makes eviction O(1) when a shard is full and lets
// the sweeper drop idle entries by looking only at each list's tail.
type table[K comparable, V any] struct {
	shards []shard[K, V]
	mask   uint64
	hash   func(K) uint64
	// clone copies a key before it is stored, so an entry never pins the
	// caller's (possibly large) backing buffer, e.g. a request header.
	clone func(K) K
}

type shard[K comparable, V any] struct {
	mu   sync.Mutex
	m    map[K]*entry[K, V]
	head *entry[K, V] // most recently used
	tail *entry[K, V] // least recently used
	cap  int
	_    [32]byte // keep neighbouring shards' mutexes off one cache line
}

type entry[K comparable, V any] struct {
	key        K
	last       int64 // unix nanoseconds of last use
	prev, next *entry[K, V]
	val        V
}

// maxShards is the shard count for large tables; 64 shards make lock
// contention negligible on the machines the gateway targets.
const maxShards = 64

func newTable[K comparable, V any](capacity int, hash func(K) uint64, clone func(K) K) *table[K, V] {
	capacity = max(1, capacity)
	n := maxShards
	for n > 1 && n > capacity {
		n /= 2
	}
	t := &table[K, V]{
		shards: make([]shard[K, V], n),
		mask:   uint64(n - 1),
		hash:   hash,
		clone:  clone,
	}
	per := capacity / n // total never exceeds capacity
	for i := range t.shards {
		t.shards[i].m = make(map[K]*entry[K, V])
		t.shards[i].cap = per
	}
	return t
}

// lookup returns the entry for k, creating it (and evicting the least
// recently used entry of a full shard) when absent, and marks it used at
// now. The shard is returned locked: the caller reads or updates the entry
// and then unlocks it. created reports a fresh entry whose val is zero.
func (t *table[K, V]) lookup(k K, now int64) (e *entry[K, V], sh *shard[K, V], created bool) {
	sh = &t.shards[t.hash(k)&t.mask]
	sh.mu.Lock()
	if e = sh.m[k]; e != nil {
		e.last = now
		sh.moveToFront(e)
		return e, sh, false
	}
	if len(sh.m) >= sh.cap {
		sh.remove(sh.tail)
	}
	if t.clone != nil {
		k = t.clone(k)
	}
	e = &entry[K, V]{key: k, last: now}
	sh.m[k] = e
	sh.pushFront(e)
	return e, sh, true
}

// peek returns the entry for k without creating it or changing its LRU
// position, with the shard locked; the caller must unlock it.
func (t *table[K, V]) peek(k K) (*entry[K, V], *shard[K, V]) {
	sh := &t.shards[t.hash(k)&t.mask]
	sh.mu.Lock()
	return sh.m[k], sh
}

// sweep drops every entry last used before cutoff. Entries are walked from
// each shard's LRU tail, so the cost is proportional to what is dropped.
func (t *table[K, V]) sweep(cutoff int64) (dropped int) {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for sh.tail != nil && sh.tail.last < cutoff {
			sh.remove(sh.tail)
			dropped++
		}
		sh.mu.Unlock()
	}
	return dropped
}

// len returns the number of entries.
func (t *table[K, V]) len() int {
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

func (sh *shard[K, V]) pushFront(e *entry[K, V]) {
	e.prev = nil
	e.next = sh.head
	if sh.head != nil {
		sh.head.prev = e
	}
	sh.head = e
	if sh.tail == nil {
		sh.tail = e
	}
}

func (sh *shard[K, V]) unlink(e *entry[K, V]) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		sh.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		sh.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (sh *shard[K, V]) moveToFront(e *entry[K, V]) {
	if sh.head == e {
		return
	}
	sh.unlink(e)
	sh.pushFront(e)
}

func (sh *shard[K, V]) remove(e *entry[K, V]) {
	if e == nil {
		return
	}
	sh.unlink(e)
	delete(sh.m, e.key)
}
