package lattice

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
	"unsafe"

	"github.com/klauspost/compress/zstd"
)

// Catalytic mode: an algorithm borrows a region that already holds someone
// else's data, frees space in it by compressing it in place, works in the
// freed space and gives the region back bit-exact.
//
// Layout while borrowed (C = borrowChunk):
//
//	[ compressed chunks 0..k-1 | scratch (aligned) ... | untouched raw data ]
//	0                          w                       r                  len
//
// Compression runs front to back: chunk i (raw bytes [iC, iC+C)) is hashed,
// compressed into a bounded staging buffer, and the result is copied to
// offset w. Because w ≤ iC and the output is shorter than the input (else
// the chunk is stored raw, moved down), the write never passes the read
// position. It stops as soon as [align8(w), r) is large enough, so only the
// prefix [0, r) is touched; that prefix is what "borrowed" means.
//
// Restoring runs back to front: chunk i's compressed bytes lie below iC, and
// all compressed bytes of earlier chunks lie below chunk i's, so decompressing
// chunk i into staging and copying it to [iC, iC+C) never overwrites data
// still to be read. The SHA-256 of [0, r) taken while compressing must match
// the SHA-256 taken after restoring. Restoring runs on every exit path of the
// operation (deferred): success, error, cancellation or panic.
//
// The caller must not touch the region while it is borrowed. A file mapped
// MAP_SHARED works: its pages are modified and then restored in place, so a
// crash mid-operation leaves the file compressed (not restored).

const borrowChunk = 256 << 10

// ErrNotCompressible means the borrowed region could not free enough space.
// Operations do not return it: they fall back to clean memory and say so in
// MemoryReport.CatalyticNote.
var ErrNotCompressible = errors.New("lattice: borrowed region does not compress enough")

type chunkRec struct {
	off, n int
	raw    bool
}

type borrow struct {
	region  []byte
	recs    []chunkRec
	w, r    int
	sum     []byte
	staging []byte
	dec     *zstd.Decoder
	done    bool

	borrowDur, restoreDur time.Duration
}

// borrowScratch frees need bytes (8-byte aligned) in region. On error the
// region has already been restored (and the restore error, if any, joined).
func borrowScratch(ctx context.Context, region []byte, need int64, h *hooks, acct *account) (*borrow, []uint64, error) {
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithEncoderConcurrency(1),
		zstd.WithWindowSize(borrowChunk),
		zstd.WithLowerEncoderMem(true),
		zstd.WithEncoderCRC(true),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("lattice: catalytic encoder: %w", err)
	}
	defer enc.Close()
	dec, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxMemory(2*borrowChunk),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("lattice: catalytic decoder: %w", err)
	}
	t0 := time.Now()
	b := &borrow{region: region, dec: dec}
	defer func() { b.borrowDur = time.Since(t0) }()
	b.staging = make([]byte, 0, enc.MaxEncodedSize(borrowChunk)+borrowChunk/64)
	acct.add(int64(cap(b.staging)))
	hasher := sha256.New()
	base := uintptr(unsafe.Pointer(unsafe.SliceData(region)))
	align := func(off int) int { return off + int((8-(base+uintptr(off))%8)%8) }
	fail := func(err error) (*borrow, []uint64, error) {
		b.sum = hasher.Sum(nil)
		return nil, nil, errors.Join(err, b.restore())
	}
	for chunk := 1; ; chunk++ {
		start := align(b.w)
		if int64(b.r-start) >= need {
			b.sum = hasher.Sum(nil)
			s := region[start : start+int(need)]
			return b, unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(s))), len(s)/8), nil
		}
		if int64(len(region)-start) < need || b.r == len(region) {
			return fail(fmt.Errorf("%w: %d bytes compressed to %d, %d bytes free after %d of %d bytes, need %d",
				ErrNotCompressible, b.r, b.w, b.r-start, b.r, len(region), need))
		}
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		if h != nil && h.failCompressChunk == chunk {
			return fail(errInjected)
		}
		end := min(b.r+borrowChunk, len(region))
		src := region[b.r:end]
		hasher.Write(src)
		out := enc.EncodeAll(src, b.staging[:0])
		if len(out) >= len(src) {
			copy(region[b.w:], src) // memmove; w ≤ r
			b.recs = append(b.recs, chunkRec{off: b.w, n: len(src), raw: true})
			b.w += len(src)
		} else {
			copy(region[b.w:], out)
			b.recs = append(b.recs, chunkRec{off: b.w, n: len(out)})
			b.w += len(out)
		}
		b.r = end
	}
}

// restore puts the region back and verifies it. Idempotent.
func (b *borrow) restore() error {
	if b == nil || b.done {
		return nil
	}
	b.done = true
	t0 := time.Now()
	defer func() { b.restoreDur = time.Since(t0) }()
	defer b.dec.Close()
	for i := len(b.recs) - 1; i >= 0; i-- {
		rec := b.recs[i]
		dst := b.region[i*borrowChunk : min((i+1)*borrowChunk, b.r)]
		src := b.region[rec.off : rec.off+rec.n]
		if rec.raw {
			copy(dst, src)
			continue
		}
		out, err := b.dec.DecodeAll(src, b.staging[:0])
		if err != nil || len(out) != len(dst) {
			return fmt.Errorf("%w: chunk %d: %v (got %d bytes, want %d)", ErrRestoreFailed, i, err, len(out), len(dst))
		}
		copy(dst, out)
	}
	after := sha256.Sum256(b.region[:b.r])
	if hex.EncodeToString(after[:]) != hex.EncodeToString(b.sum) {
		return fmt.Errorf("%w: SHA-256 of the %d borrowed bytes differs after restoring", ErrRestoreFailed, b.r)
	}
	return nil
}

func (b *borrow) report(r *MemoryReport, restoreErr error) {
	r.Catalytic = true
	r.BorrowedBytes = int64(b.r)
	r.CompressedBytes = int64(b.w)
	r.RegionSHA256 = hex.EncodeToString(b.sum)
	r.BorrowDuration, r.RestoreDuration = b.borrowDur, b.restoreDur
	if restoreErr == nil && b.done {
		r.RestoredBytes = int64(b.r)
	}
}
