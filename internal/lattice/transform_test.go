package lattice

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

func clonePoints(p [][]int64) [][]int64 {
	out := make([][]int64, len(p))
	for i := range p {
		out[i] = slices.Clone(p[i])
	}
	return out
}

func equalPoints(a, b [][]int64) bool {
	return slices.EqualFunc(a, b, func(x, y []int64) bool { return slices.Equal(x, y) })
}

// randTransform returns a random valid transform of l (or nil).
func randTransform(r *rand.Rand, l *Lattice) Transform {
	d := len(l.dims)
	switch r.IntN(6) {
	case 0:
		i, j := r.IntN(d), r.IntN(d)
		t, err := l.Rotation(i, j, r.IntN(9)-4)
		if err != nil {
			return nil
		}
		return t
	case 1:
		t, _ := l.Reflection(r.IntN(d))
		return t
	case 2:
		off := make([]int64, d)
		for i := range off {
			if l.periodic {
				off[i] = r.Int64N(5*l.dims[i]) - 2*l.dims[i]
			} else if r.IntN(3) == 0 {
				off[i] = r.Int64N(3) - 1
			}
		}
		t, err := l.Translation(off)
		if err != nil {
			return nil
		}
		return t
	case 3:
		t, err := l.AxisPermutation(r.Perm(d))
		if err != nil {
			return nil
		}
		return t
	case 4:
		mask := make([]int64, d)
		for i, n := range l.dims {
			low := n & -n // largest power of two dividing n
			mask[i] = r.Int64N(low)
		}
		t, err := l.XORMask(mask)
		if err != nil {
			panic(err)
		}
		return t
	default:
		var ts []Transform
		for range 1 + r.IntN(4) {
			if t := randTransform(r, l); t != nil {
				ts = append(ts, t)
			}
		}
		return Compose(ts...)
	}
}

// Every transform maps valid points to valid points and inverse∘transform is
// the identity, also composed.
func TestTransformsRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	applied := map[string]int{}
	for range 400 {
		d := 1 + r.IntN(4)
		n := 1 + r.Int64N(9)
		dims := make([]int64, d)
		for i := range dims {
			dims[i] = n
			if r.IntN(4) == 0 {
				dims[i] = 1 + r.Int64N(16)
			}
		}
		l := mustNew(t, Spec{Dims: dims, Periodic: r.IntN(2) == 0})
		pts := make([][]int64, 1+r.IntN(30))
		for i := range pts {
			pts[i] = randPoint(r, dims)
		}
		for range 5 {
			tr := randTransform(r, l)
			if tr == nil {
				continue
			}
			before := clonePoints(pts)
			err := CheckInverse(tr, pts)
			if !equalPoints(before, pts) {
				t.Fatal("CheckInverse modified its input")
			}
			if errors.Is(err, ErrOutOfBounds) && !l.periodic {
				continue // an open translation pushed a point out: refused
			}
			if err != nil {
				t.Fatalf("%v %s: %v", dims, tr, err)
			}
			work := clonePoints(pts)
			if err := tr.Apply(work); err != nil {
				t.Fatal(err)
			}
			for _, p := range work {
				if _, err := l.Index(p); err != nil {
					t.Fatalf("%s mapped a point out of the lattice: %v", tr, p)
				}
			}
			if err := tr.Inverse().Apply(work); err != nil || !equalPoints(work, pts) {
				t.Fatalf("%s: inverse did not restore (%v)", tr, err)
			}
			applied[tr.String()[:3]]++
		}
	}
	for _, k := range []string{"rot", "ref", "tra", "per", "xor", "com"} {
		if applied[k] == 0 {
			t.Errorf("no %s transform exercised: %v", k, applied)
		}
	}
}

func TestTransformValues(t *testing.T) {
	l := mustNew(t, Spec{Dims: []int64{4, 4, 6}, Periodic: true})
	rot, _ := l.Rotation(0, 1, 1)
	pts := [][]int64{{0, 0, 5}, {1, 3, 2}}
	if err := rot.Apply(pts); err != nil || !equalPoints(pts, [][]int64{{3, 0, 5}, {0, 1, 2}}) {
		t.Fatalf("rotation: %v %v", pts, err)
	}
	four := Compose(rot, rot, rot, rot)
	p := [][]int64{{2, 1, 0}}
	if err := four.Apply(p); err != nil || !slices.Equal(p[0], []int64{2, 1, 0}) {
		t.Fatalf("four quarter turns: %v", p)
	}
	tr, _ := l.Translation([]int64{-1, 5, 13})
	p = [][]int64{{0, 0, 0}}
	if err := tr.Apply(p); err != nil || !slices.Equal(p[0], []int64{3, 1, 1}) {
		t.Fatalf("periodic translation: %v", p)
	}
	x, _ := l.XORMask([]int64{3, 1, 1})
	p = [][]int64{{1, 2, 4}}
	if err := x.Apply(p); err != nil || !slices.Equal(p[0], []int64{2, 3, 5}) {
		t.Fatalf("xor: %v", p)
	}
	perm, _ := l.AxisPermutation([]int{1, 0, 2})
	p = [][]int64{{1, 2, 4}}
	if err := perm.Apply(p); err != nil || !slices.Equal(p[0], []int64{2, 1, 4}) {
		t.Fatalf("permutation: %v", p)
	}
	ref, _ := l.Reflection(2)
	p = [][]int64{{1, 2, 4}}
	if err := ref.Apply(p); err != nil || !slices.Equal(p[0], []int64{1, 2, 1}) {
		t.Fatalf("reflection: %v", p)
	}
}

func TestTransformErrors(t *testing.T) {
	l := mustNew(t, Spec{Dims: []int64{4, 6, 4}})
	bad := []struct {
		name string
		f    func() (Transform, error)
		want error
	}{
		{"rotation unequal axes", func() (Transform, error) { return l.Rotation(0, 1, 1) }, ErrTransform},
		{"rotation same axis", func() (Transform, error) { return l.Rotation(2, 2, 1) }, ErrTransform},
		{"rotation bad axis", func() (Transform, error) { return l.Rotation(0, 3, 1) }, ErrTransform},
		{"reflection bad axis", func() (Transform, error) { return l.Reflection(-1) }, ErrTransform},
		{"translation dims", func() (Transform, error) { return l.Translation([]int64{1}) }, ErrDimension},
		{"translation too far", func() (Transform, error) { return l.Translation([]int64{4, 0, 0}) }, ErrTransform},
		{"permutation not one", func() (Transform, error) { return l.AxisPermutation([]int{0, 0, 2}) }, ErrTransform},
		{"permutation lengths", func() (Transform, error) { return l.AxisPermutation([]int{1, 0, 2}) }, ErrTransform},
		{"permutation dims", func() (Transform, error) { return l.AxisPermutation([]int{0, 1}) }, ErrDimension},
		{"xor not a bijection", func() (Transform, error) { return l.XORMask([]int64{0, 2, 0}) }, ErrTransform},
		{"xor negative", func() (Transform, error) { return l.XORMask([]int64{-1, 0, 0}) }, ErrTransform},
		{"xor dims", func() (Transform, error) { return l.XORMask([]int64{1}) }, ErrDimension},
	}
	for _, c := range bad {
		if _, err := c.f(); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := l.XORMask([]int64{3, 1, 2}); err != nil { // 6 is a multiple of 2
		t.Errorf("xor 1 on length 6: %v", err)
	}
	// Apply validates everything first and leaves the set unchanged on error
	tr, _ := l.Translation([]int64{1, 0, 0})
	pts := [][]int64{{0, 0, 0}, {3, 0, 0}}
	if err := tr.Apply(pts); !errors.Is(err, ErrOutOfBounds) || !equalPoints(pts, [][]int64{{0, 0, 0}, {3, 0, 0}}) {
		t.Fatalf("open translation out of the box: %v %v", err, pts)
	}
	ref, _ := l.Reflection(0)
	pts = [][]int64{{0, 0, 0}, {0, 0}}
	if err := ref.Apply(pts); !errors.Is(err, ErrDimension) || pts[0][0] != 0 {
		t.Fatalf("malformed point: %v %v", err, pts)
	}
	// a composite failing half-way puts the earlier steps back
	c := Compose(ref, tr)
	pts = [][]int64{{0, 1, 2}, {2, 0, 0}}
	if err := c.Apply(pts); err == nil || !equalPoints(pts, [][]int64{{0, 1, 2}, {2, 0, 0}}) {
		t.Fatalf("composite rollback: %v %v", err, pts)
	}
}
