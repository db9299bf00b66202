package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"

	"github.com/mcpedge/mcpedge/internal/store"
)

// SealVersion is the version tag that starts every sealed encoding. A future
// encoding would use a new tag, so hashes of different versions never
// collide.
const SealVersion = "mcpedge-audit-v1"

// Seal sets e.Hash to the SHA-256 digest of the canonical encoding of every
// other field of e, including Seq and PrevHash. It reads nothing but e and
// changes nothing but e.Hash.
//
// The encoding is the concatenation of these thirteen fields, in this
// order, each written as field(x):
//
//	#   field      type
//	1   version    string, the ASCII tag "mcpedge-audit-v1"
//	2   Seq        int64
//	3   Time       int64, microseconds since 1970-01-01T00:00:00Z
//	               (time.Time.UnixMicro; finer digits are not hashed)
//	4   TenantID   string
//	5   Actor      string
//	6   ActorKind  string
//	7   Action     string
//	8   Target     string
//	9   Outcome    string
//	10  LatencyUS  int64
//	11  ClientIP   string
//	12  Detail     bytes, exactly as stored (not re-formatted as JSON)
//	13  PrevHash   bytes, 32 of them (none for Seq 1)
//
// where field(x) is the length of x in bytes as an unsigned 64-bit
// big-endian integer followed by the bytes of x; a string's bytes are its
// UTF-8 encoding; an int64 is 8 bytes, big-endian two's complement (so its
// length prefix is always 8); and a nil byte slice is the same as an empty
// one. Because every field carries its length, no two different entries
// have the same encoding.
//
// Example: the encoding of field 1 is the 8 bytes 00 00 00 00 00 00 00 10
// followed by the 16 bytes of "mcpedge-audit-v1".
//
// Time is hashed at microsecond precision, which every store keeps; the
// [Logger] truncates times to microseconds before appending so that the
// stored time is exactly the hashed one.
func Seal(e *store.AuditEntry) {
	h := sha256.New()
	writeSealed(h, e)
	e.Hash = h.Sum(nil)
}

// sealed returns the hash Seal would set, without changing e.
func sealed(e *store.AuditEntry) []byte {
	h := sha256.New()
	writeSealed(h, e)
	return h.Sum(nil)
}

func writeSealed(h hash.Hash, e *store.AuditEntry) {
	var buf [8]byte
	bytesField := func(b []byte) {
		binary.BigEndian.PutUint64(buf[:], uint64(len(b)))
		h.Write(buf[:])
		h.Write(b)
	}
	stringField := func(s string) {
		binary.BigEndian.PutUint64(buf[:], uint64(len(s)))
		h.Write(buf[:])
		h.Write([]byte(s))
	}
	intField := func(v int64) {
		binary.BigEndian.PutUint64(buf[:], 8)
		h.Write(buf[:])
		binary.BigEndian.PutUint64(buf[:], uint64(v))
		h.Write(buf[:])
	}
	stringField(SealVersion)
	intField(e.Seq)
	intField(e.Time.UnixMicro())
	stringField(e.TenantID)
	stringField(e.Actor)
	stringField(e.ActorKind)
	stringField(e.Action)
	stringField(e.Target)
	stringField(e.Outcome)
	intField(e.LatencyUS)
	stringField(e.ClientIP)
	bytesField(e.Detail)
	bytesField(e.PrevHash)
}
