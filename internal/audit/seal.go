package audit

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"hash"

	"github.com/mcpedge/mcpedge/internal/store"
)

// SealVersion is the version tag that starts the v1 encoding (entries
// without a PIISalt). SealVersion2 starts the v2 encoding (erasable
// entries). A new encoding uses a new tag, so hashes of different versions
// never collide.
const (
	SealVersion  = "mcpedge-audit-v1"
	SealVersion2 = "mcpedge-audit-v2"
	// PIIVersion starts the encoding of a v2 entry's personal fields.
	PIIVersion = "mcpedge-audit-pii-v1"
	// PIISaltSize is the size of the random salt [NewPIISalt] makes.
	PIISaltSize = 32
)

// NewPIISalt returns a fresh random salt for an entry's PIISalt, which
// makes the entry erasable (v2). The [Logger] gives every entry one.
func NewPIISalt() []byte {
	b := make([]byte, PIISaltSize)
	rand.Read(b)
	return b
}

// Seal sets e.Hash to the SHA-256 digest of the canonical encoding of e,
// including Seq and PrevHash. An entry with a PIISalt is sealed in the v2
// encoding, which makes it erasable, and also gets e.PIIDigest; one
// without is sealed in the v1 encoding (what mcpedge wrote before
// erasure existed). It reads nothing but e and changes nothing but
// e.Hash and e.PIIDigest.
//
// # v1
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
// # v2 (erasable entries)
//
// The personal fields are committed to first:
//
//	PIIDigest = SHA-256(field("mcpedge-audit-pii-v1") field(PIISalt)
//	                    field(Actor) field(Target) field(ClientIP) field(Detail))
//
// and the hash covers the digest in their place, in ten fields:
//
//	field("mcpedge-audit-v2") field(Seq) field(Time) field(TenantID)
//	field(ActorKind) field(Action) field(Outcome) field(LatencyUS)
//	field(PIIDigest) field(PrevHash)
//
// Erasing the entry (store.TenantData.EraseTenant) empties the personal
// fields and the salt and sets Erased; the digest and the hash stay, so
// the chain still verifies, and without the salt the digest tells nothing
// about what was erased (the salt is 32 random bytes, so even a field with
// few possible values, an IP address, can not be guessed from it). See
// docs/design/erasure.md.
//
// Time is hashed at microsecond precision, which every store keeps; the
// [Logger] truncates times to microseconds before appending so that the
// stored time is exactly the hashed one.
func Seal(e *store.AuditEntry) {
	if len(e.PIISalt) > 0 {
		e.PIIDigest = PIIDigest(e)
	}
	e.Hash = sealed(e)
}

// PIIDigest returns the v2 commitment to e's personal fields with its
// salt (see [Seal]).
func PIIDigest(e *store.AuditEntry) []byte {
	h := sha256.New()
	f := fields{h: h}
	f.str(PIIVersion)
	f.bytes(e.PIISalt)
	f.str(e.Actor)
	f.str(e.Target)
	f.str(e.ClientIP)
	f.bytes(e.Detail)
	return h.Sum(nil)
}

// sealed returns the hash of e in its encoding: v2 when it has a digest
// (the stored one: the caller checks it against the fields), v1 otherwise.
func sealed(e *store.AuditEntry) []byte {
	h := sha256.New()
	f := fields{h: h}
	if len(e.PIIDigest) > 0 {
		f.str(SealVersion2)
		f.int(e.Seq)
		f.int(e.Time.UnixMicro())
		f.str(e.TenantID)
		f.str(e.ActorKind)
		f.str(e.Action)
		f.str(e.Outcome)
		f.int(e.LatencyUS)
		f.bytes(e.PIIDigest)
		f.bytes(e.PrevHash)
		return h.Sum(nil)
	}
	f.str(SealVersion)
	f.int(e.Seq)
	f.int(e.Time.UnixMicro())
	f.str(e.TenantID)
	f.str(e.Actor)
	f.str(e.ActorKind)
	f.str(e.Action)
	f.str(e.Target)
	f.str(e.Outcome)
	f.int(e.LatencyUS)
	f.str(e.ClientIP)
	f.bytes(e.Detail)
	f.bytes(e.PrevHash)
	return h.Sum(nil)
}

// fields writes length-prefixed fields to a hash.
type fields struct {
	h   hash.Hash
	buf [8]byte
}

func (f *fields) bytes(b []byte) {
	binary.BigEndian.PutUint64(f.buf[:], uint64(len(b)))
	f.h.Write(f.buf[:])
	f.h.Write(b)
}

func (f *fields) str(s string) {
	binary.BigEndian.PutUint64(f.buf[:], uint64(len(s)))
	f.h.Write(f.buf[:])
	f.h.Write([]byte(s))
}

func (f *fields) int(v int64) {
	binary.BigEndian.PutUint64(f.buf[:], 8)
	f.h.Write(f.buf[:])
	binary.BigEndian.PutUint64(f.buf[:], uint64(v))
	f.h.Write(f.buf[:])
}
