package lattice

import "math/bits"

// divisor divides numerators below 2^62 by a fixed n with one 64×64→128
// multiplication and one correction, instead of a hardware division.
//
// m = ⌊(2^64−1)/n⌋ + 1 satisfies 0 ≤ m − 2^64/n < 1, so for x < 2^62 the
// estimate ⌊x·m/2^64⌋ exceeds ⌊x/n⌋ by at most x/2^64 < 1/4, i.e. it is
// ⌊x/n⌋ or ⌊x/n⌋+1; the correction removes the second case.
type divisor struct {
	n, m uint64 // m == 0 means n == 1
}

func newDivisor(n uint64) divisor {
	if n <= 1 {
		return divisor{n: 1}
	}
	return divisor{n: n, m: ^uint64(0)/n + 1}
}

func (d divisor) div(x uint64) uint64 {
	if d.m == 0 {
		return x
	}
	q, _ := bits.Mul64(x, d.m)
	if q*d.n > x {
		q--
	}
	return q
}
