package config

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"maps"
	"slices"
)

// keyHash builds the stable hashes behind [Upstream.Fingerprint],
// [FailureHandling.FailureKey] and [Cache.CacheKey]. Every string is
// length-prefixed so that no two different settings serialise to the same
// byte stream (e.g. args ["a b"] vs ["a","b"]).
type keyHash struct{ h hash.Hash }

func newKeyHash() keyHash { return keyHash{sha256.New()} }

func (k keyHash) num(v int64) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(v))
	k.h.Write(n[:])
}

func (k keyHash) str(s string) {
	k.num(int64(len(s)))
	k.h.Write([]byte(s))
}

func (k keyHash) flag(b bool) {
	if b {
		k.num(1)
	} else {
		k.num(0)
	}
}

// durations hashes a tool-to-duration table in key order.
func (k keyHash) durations(m map[string]Duration) {
	keys := slices.Sorted(maps.Keys(m))
	k.num(int64(len(keys)))
	for _, key := range keys {
		k.str(key)
		k.num(int64(m[key]))
	}
}

// sum returns the first 128 bits of the hash in hex.
func (k keyHash) sum() string { return hex.EncodeToString(k.h.Sum(nil)[:16]) }
