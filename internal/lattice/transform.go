package lattice

import (
	"fmt"
	"math/bits"
	"slices"
	"strings"
)

// Transform is a reversible map of a lattice onto itself, applied to point
// sets in place. Apply validates every point first and leaves the set
// unchanged on error. Inverse returns the transform that undoes it.
type Transform interface {
	Apply(points [][]int64) error
	Inverse() Transform
	String() string
}

// CheckInverse applies t and then t.Inverse() to a copy of points and
// reports whether every point came back (inverse∘transform = identity on
// these points). points is not modified.
func CheckInverse(t Transform, points [][]int64) error {
	work := make([][]int64, len(points))
	for i, p := range points {
		work[i] = slices.Clone(p)
	}
	if err := t.Apply(work); err != nil {
		return err
	}
	if err := t.Inverse().Apply(work); err != nil {
		return fmt.Errorf("inverse of %s: %w", t, err)
	}
	for i := range work {
		if !slices.Equal(work[i], points[i]) {
			return fmt.Errorf("%w: %s then its inverse maps %v to %v", ErrTransform, t, points[i], work[i])
		}
	}
	return nil
}

// pointwise is a transform given by a function of one valid point; it
// checks its input and (optionally) its output against the lattice.
type pointwise struct {
	l    *Lattice
	name string
	f    func(p []int64) // in place; p is valid on entry
	ok   func(p []int64) error
	inv  func() Transform
}

func (t *pointwise) String() string     { return t.name }
func (t *pointwise) Inverse() Transform { return t.inv() }
func (t *pointwise) Apply(pts [][]int64) error {
	for i, p := range pts {
		if _, err := t.l.index(p); err != nil {
			return fmt.Errorf("%s: point %d: %w", t.name, i, err)
		}
		if t.ok != nil {
			if err := t.ok(p); err != nil {
				return fmt.Errorf("%s: point %d %v: %w", t.name, i, p, err)
			}
		}
	}
	for _, p := range pts {
		t.f(p)
	}
	return nil
}

func (l *Lattice) checkAxis(a int) error {
	if a < 0 || a >= len(l.dims) {
		return fmt.Errorf("%w: axis %d (lattice has %d)", ErrTransform, a, len(l.dims))
	}
	return nil
}

// Rotation turns by quarterTurns × 90° in the plane of axes i and j about
// the box centre: one turn maps (x_i, x_j) to (n−1−x_j, x_i). Both axes must
// have the same length n so the box maps onto itself.
func (l *Lattice) Rotation(i, j, quarterTurns int) (Transform, error) {
	if err := l.checkAxis(i); err != nil {
		return nil, err
	}
	if err := l.checkAxis(j); err != nil {
		return nil, err
	}
	if i == j {
		return nil, fmt.Errorf("%w: rotation plane needs two different axes, got %d twice", ErrTransform, i)
	}
	if l.dims[i] != l.dims[j] {
		return nil, fmt.Errorf("%w: rotation in plane (%d, %d) needs equal lengths, got %d and %d", ErrTransform, i, j, l.dims[i], l.dims[j])
	}
	k := ((quarterTurns % 4) + 4) % 4
	n := l.dims[i]
	return &pointwise{
		l:    l,
		name: fmt.Sprintf("rotate(%d,%d)×%d", i, j, k),
		f: func(p []int64) {
			for range k {
				p[i], p[j] = n-1-p[j], p[i]
			}
		},
		inv: func() Transform { t, _ := l.Rotation(i, j, 4-k); return t },
	}, nil
}

// Reflection mirrors axis a: x → n−1−x. It is its own inverse.
func (l *Lattice) Reflection(a int) (Transform, error) {
	if err := l.checkAxis(a); err != nil {
		return nil, err
	}
	n := l.dims[a]
	var t *pointwise
	t = &pointwise{
		l: l, name: fmt.Sprintf("reflect(%d)", a),
		f:   func(p []int64) { p[a] = n - 1 - p[a] },
		inv: func() Transform { return t },
	}
	return t, nil
}

// Translation adds offset: modulo the lengths on a periodic lattice; on an
// open lattice a point that would leave the box is an error.
func (l *Lattice) Translation(offset []int64) (Transform, error) {
	if len(offset) != len(l.dims) {
		return nil, fmt.Errorf("%w: translation has %d components, lattice has %d axes", ErrDimension, len(offset), len(l.dims))
	}
	off := slices.Clone(offset)
	neg := make([]int64, len(off))
	for i, o := range off {
		if l.periodic {
			off[i] = ((o % l.dims[i]) + l.dims[i]) % l.dims[i]
			neg[i] = (l.dims[i] - off[i]) % l.dims[i]
		} else {
			if o <= -l.dims[i] || o >= l.dims[i] {
				return nil, fmt.Errorf("%w: offset %d on axis %d moves every point out of [0, %d)", ErrTransform, o, i, l.dims[i])
			}
			neg[i] = -o
		}
	}
	t := &pointwise{
		l: l, name: fmt.Sprintf("translate%v", offset),
		f: func(p []int64) {
			for i := range p {
				p[i] += off[i]
				if l.periodic && p[i] >= l.dims[i] {
					p[i] -= l.dims[i]
				}
			}
		},
		inv: func() Transform { t, _ := l.Translation(neg); return t },
	}
	if !l.periodic {
		t.ok = func(p []int64) error {
			for i := range p {
				if x := p[i] + off[i]; x < 0 || x >= l.dims[i] {
					return fmt.Errorf("%w: axis %d would move to %d, outside [0, %d) on an open lattice", ErrOutOfBounds, i, x, l.dims[i])
				}
			}
			return nil
		}
	}
	return t, nil
}

// AxisPermutation maps x to x' with x'_k = x_perm[k]. Permuted axes must
// have equal lengths so the box maps onto itself.
func (l *Lattice) AxisPermutation(perm []int) (Transform, error) {
	d := len(l.dims)
	if len(perm) != d {
		return nil, fmt.Errorf("%w: permutation has %d entries, lattice has %d axes", ErrDimension, len(perm), d)
	}
	inv := make([]int, d)
	seen := make([]bool, d)
	for k, a := range perm {
		if a < 0 || a >= d || seen[a] {
			return nil, fmt.Errorf("%w: %v is not a permutation of 0..%d", ErrTransform, perm, d-1)
		}
		seen[a] = true
		inv[a] = k
		if l.dims[a] != l.dims[k] {
			return nil, fmt.Errorf("%w: permutation moves axis %d (length %d) to axis %d (length %d)", ErrTransform, a, l.dims[a], k, l.dims[k])
		}
	}
	p := slices.Clone(perm)
	return &pointwise{
		l: l, name: fmt.Sprintf("permute%v", p),
		f: func(x []int64) {
			var tmp [MaxDims]int64
			copy(tmp[:], x)
			for k := range x {
				x[k] = tmp[p[k]]
			}
		},
		inv: func() Transform { t, _ := l.AxisPermutation(inv); return t },
	}, nil
}

// XORMask maps x_i to x_i XOR mask_i. It is its own inverse. XOR by m is a
// bijection of [0, n) exactly when n is a multiple of 2^bitlen(m), which is
// required (so any mask works on power-of-two lengths ≥ the mask).
func (l *Lattice) XORMask(mask []int64) (Transform, error) {
	if len(mask) != len(l.dims) {
		return nil, fmt.Errorf("%w: mask has %d components, lattice has %d axes", ErrDimension, len(mask), len(l.dims))
	}
	for i, m := range mask {
		if m < 0 {
			return nil, fmt.Errorf("%w: negative mask %d on axis %d", ErrTransform, m, i)
		}
		if b := bits.Len64(uint64(m)); b > 62 || l.dims[i]%(1<<b) != 0 {
			return nil, fmt.Errorf("%w: XOR with %d does not map [0, %d) onto itself (length must be a multiple of %d)", ErrTransform, m, l.dims[i], uint64(1)<<min(b, 63))
		}
	}
	mk := slices.Clone(mask)
	var t *pointwise
	t = &pointwise{
		l: l, name: fmt.Sprintf("xor%v", mk),
		f: func(p []int64) {
			for i := range p {
				p[i] ^= mk[i]
			}
		},
		inv: func() Transform { return t },
	}
	return t, nil
}

// Compose applies ts in order; its inverse applies the inverses in reverse.
// On error the points are put back as they were.
func Compose(ts ...Transform) Transform { return composite(slices.Clone(ts)) }

type composite []Transform

func (c composite) String() string {
	parts := make([]string, len(c))
	for i, t := range c {
		parts[i] = t.String()
	}
	return "compose(" + strings.Join(parts, ", ") + ")"
}

func (c composite) Inverse() Transform {
	inv := make(composite, len(c))
	for i, t := range c {
		inv[len(c)-1-i] = t.Inverse()
	}
	return inv
}

func (c composite) Apply(pts [][]int64) error {
	for i, t := range c {
		if err := t.Apply(pts); err != nil {
			for j := i - 1; j >= 0; j-- {
				_ = c[j].Inverse().Apply(pts)
			}
			return err
		}
	}
	return nil
}
