package lattice

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

func catLattice(t *testing.T) (*Lattice, []int64, []int64) {
	t.Helper()
	l := mustNew(t, Spec{Dims: []int64{300, 300}, Blocked: Blocking{Random: &RandomBlock{Density: 0.2, Seed: 9}}})
	from, to := []int64{1, 1}, []int64{290, 280}
	for _, p := range [][]int64{from, to} {
		for b, _ := l.IsBlocked(p); b; b, _ = l.IsBlocked(p) {
			p[0]++
		}
	}
	return l, from, to
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// The region comes back bit-identical after a successful catalytic search,
// and the answer equals the one found in clean memory.
func TestCatalyticRestoresRegion(t *testing.T) {
	l, from, to := catLattice(t)
	region := SyntheticRegion(3 << 20)
	orig := bytes.Clone(region)
	for _, algo := range []string{AlgoBFS, AlgoBidirectional} {
		for _, par := range []int{1, 2} {
			want, err := l.ShortestPath(bg, from, to, PathOptions{Algorithm: algo})
			if err != nil {
				t.Fatal(err)
			}
			h := &hooks{chunk: 16, parMin: 16}
			got, err := l.ShortestPath(bg, from, to, PathOptions{Algorithm: algo, Parallel: par, Catalytic: true, Borrow: region, hooks: h})
			if err != nil {
				t.Fatalf("%s: %v", algo, err)
			}
			m := got.Memory
			if !m.Catalytic || m.BorrowedBytes == 0 || m.RestoredBytes != m.BorrowedBytes || m.CompressedBytes >= m.BorrowedBytes || len(m.RegionSHA256) != 64 {
				t.Fatalf("%s: memory report %+v", algo, m)
			}
			if m.ScratchBytes > m.BorrowedBytes-m.CompressedBytes {
				t.Fatalf("%s: scratch %d larger than the freed %d", algo, m.ScratchBytes, m.BorrowedBytes-m.CompressedBytes)
			}
			if !bytes.Equal(region, orig) {
				t.Fatalf("%s: region changed", algo)
			}
			if got.Length != want.Length {
				t.Fatalf("%s: catalytic length %d, clean %d", algo, got.Length, want.Length)
			}
			checkPath(t, l, Spec{Dims: l.Dims()}, from, to, got)
		}
	}
	res, err := l.ReachableWithin(bg, from, -1, PathOptions{Catalytic: true, Borrow: region})
	if err != nil || !res.Memory.Catalytic || !bytes.Equal(region, orig) {
		t.Fatalf("reach: %v %+v", err, res.Memory)
	}
	clean, _ := l.ReachableWithin(bg, from, -1, PathOptions{Algorithm: AlgoBFS})
	if res.Count != clean.Count {
		t.Fatalf("catalytic count %d, clean %d", res.Count, clean.Count)
	}
}

// Cancellation, an injected failure (during the search or while compressing)
// and a panic all leave the region bit-identical.
func TestCatalyticRestoresOnEveryExit(t *testing.T) {
	l, from, to := catLattice(t)
	region := SyntheticRegion(3 << 20)
	orig := bytes.Clone(region)
	check := func(name string) {
		t.Helper()
		if !bytes.Equal(region, orig) {
			t.Fatalf("%s: region not restored", name)
		}
	}
	for _, par := range []int{1, 2} {
		ctx, cancel := context.WithCancel(bg)
		h := &hooks{chunk: 8, parMin: 8, onProgress: func(n int64) {
			if n > 3000 {
				cancel()
			}
		}}
		_, err := l.ShortestPath(ctx, from, to, PathOptions{Algorithm: AlgoBFS, Parallel: par, Catalytic: true, Borrow: region, hooks: h})
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancel mid-run: %v", err)
		}
		check("cancel mid-run")

		_, err = l.ReachableWithin(bg, from, -1, PathOptions{Parallel: par, Catalytic: true, Borrow: region, hooks: &hooks{failAfter: 2000, chunk: 8, parMin: 8}})
		if !errors.Is(err, errInjected) {
			t.Fatalf("injected failure: %v", err)
		}
		check("injected failure")
	}
	// failure while compressing: first chunk, and after some chunks
	for _, c := range []int{1, 2} {
		// a mostly incompressible region needs several chunks
		reg := append(randomBytes(borrowChunk, 5), SyntheticRegion(2<<20)...)
		o := bytes.Clone(reg)
		_, err := l.ShortestPath(bg, from, to, PathOptions{Algorithm: AlgoBFS, Catalytic: true, Borrow: reg, hooks: &hooks{failCompressChunk: c}})
		if !errors.Is(err, errInjected) {
			t.Fatalf("compress failure at chunk %d: %v", c, err)
		}
		if !bytes.Equal(reg, o) {
			t.Fatalf("compress failure at chunk %d: region not restored", c)
		}
	}
	// cancelled before the search starts compressing: nothing borrowed
	ctx, cancel := context.WithCancel(bg)
	cancel()
	if _, err := l.ShortestPath(ctx, from, to, PathOptions{Algorithm: AlgoBFS, Catalytic: true, Borrow: region}); !errors.Is(err, context.Canceled) {
		t.Fatalf("pre-cancelled: %v", err)
	}
	check("pre-cancelled")
	// a panic inside the search unwinds through the deferred restore
	func() {
		defer func() {
			if r := recover(); r == nil {
				t.Fatal("no panic")
			}
		}()
		h := &hooks{chunk: 8, onProgress: func(n int64) {
			if n > 1000 {
				panic("boom")
			}
		}}
		_, _ = l.ShortestPath(bg, from, to, PathOptions{Algorithm: AlgoBFS, Parallel: 1, Catalytic: true, Borrow: region, hooks: h})
	}()
	check("panic")
}

// A region that does not compress enough is reported, left intact, and the
// search runs in clean memory.
func TestCatalyticFallsBack(t *testing.T) {
	l, from, to := catLattice(t)
	for name, region := range map[string][]byte{
		"random":    randomBytes(1<<20, 3),
		"too small": SyntheticRegion(4096),
	} {
		orig := bytes.Clone(region)
		res, err := l.ShortestPath(bg, from, to, PathOptions{Algorithm: AlgoBFS, Catalytic: true, Borrow: region})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if res.Memory.Catalytic || !strings.Contains(res.Memory.CatalyticNote, "fell back") || !strings.Contains(res.Memory.CatalyticNote, "does not compress enough") {
			t.Fatalf("%s: %+v", name, res.Memory)
		}
		if !bytes.Equal(region, orig) {
			t.Fatalf("%s: region changed", name)
		}
		if !res.Reachable || res.Path == nil {
			t.Fatalf("%s: %+v", name, res)
		}
	}
	// catalytic requested where no scratch is needed
	open := mustNew(t, Spec{Dims: []int64{50, 50}})
	res, err := open.ShortestPath(bg, []int64{0, 0}, []int64{3, 4}, PathOptions{Catalytic: true, Borrow: SyntheticRegion(1 << 20)})
	if err != nil || res.Memory.Catalytic || !strings.Contains(res.Memory.CatalyticNote, "not used") {
		t.Fatalf("closed form: %v %+v", err, res.Memory)
	}
}

// borrowScratch itself: raw (incompressible) and compressed chunks mixed,
// an unaligned region, scratch overwritten with garbage, then restored.
func TestBorrowScratchRoundTrip(t *testing.T) {
	var parts [][]byte
	for i := range 12 {
		if i%3 == 1 {
			parts = append(parts, randomBytes(borrowChunk-1000*i, uint64(i)))
		} else {
			parts = append(parts, SyntheticRegion(borrowChunk+777*i))
		}
	}
	buf := bytes.Join(parts, nil)
	for _, off := range []int{0, 1, 3, 7} {
		region := buf[off:]
		orig := bytes.Clone(region)
		for _, need := range []int64{8, 1 << 20, 1200 << 10} {
			b, scratch, err := borrowScratch(bg, region, need, nil, nil)
			if err != nil {
				t.Fatalf("off %d need %d: %v", off, need, err)
			}
			if int64(len(scratch))*8 != need {
				t.Fatalf("scratch of %d words for %d bytes", len(scratch), need)
			}
			for i := range scratch {
				scratch[i] = ^uint64(i)
			}
			raw := 0
			for _, r := range b.recs {
				if r.raw {
					raw++
				}
			}
			if need > 1<<20 && raw == 0 {
				t.Fatalf("no raw chunk exercised")
			}
			if err := b.restore(); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(region, orig) {
				t.Fatalf("off %d need %d: region differs after restore", off, need)
			}
		}
		// asking for more than the region can ever free
		if _, _, err := borrowScratch(bg, region, int64(len(region)), nil, nil); !errors.Is(err, ErrNotCompressible) {
			t.Fatalf("impossible borrow: %v", err)
		}
		if !bytes.Equal(region, orig) {
			t.Fatalf("region differs after a refused borrow")
		}
	}
	// a corrupted region is detected, not silently accepted
	region := SyntheticRegion(2 << 20)
	b, _, err := borrowScratch(bg, region, 1<<20, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	region[0] ^= 0xff // clobber the first compressed frame
	if err := b.restore(); !errors.Is(err, ErrRestoreFailed) {
		t.Fatalf("corruption: %v", err)
	}
}
