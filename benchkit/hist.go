package benchkit

import (
	"math/bits"
	"time"
)

// subBits sets the histogram's precision: 2^subBits buckets per power of
// two, so a recorded latency is off by at most 1/64 (1.6 %) of its value.
const subBits = 6

// hist is a log-linear latency histogram in nanoseconds, like HdrHistogram
// with a fixed precision. Recording is an index computation and an
// increment: no allocation, no lock (each worker owns one).
type hist struct {
	counts [(64 - subBits + 1) << subBits]uint64
	n      uint64
}

// bucket returns the index of v: values below 2^subBits have a bucket each;
// above, the top subBits+1 significant bits pick the bucket.
func bucket(v uint64) int {
	if v < 1<<subBits {
		return int(v)
	}
	n := bits.Len64(v)       // > subBits
	shift := n - subBits - 1 // >= 0
	sub := int(v>>shift) - 1<<subBits
	return (shift+1)<<subBits + sub
}

// lowest returns the smallest value of bucket i, and the bucket's width.
func lowest(i int) (lo, width uint64) {
	if i < 1<<subBits {
		return uint64(i), 1
	}
	shift := i>>subBits - 1
	sub := uint64(i & (1<<subBits - 1))
	return (1<<subBits + sub) << shift, 1 << shift
}

func (h *hist) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucket(uint64(d))]++
	h.n++
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
}

// quantile returns the q-quantile (0 < q <= 1): the middle of the bucket
// that holds the ceil(q·n)-th smallest value. Zero if nothing was recorded.
func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.999999)
	rank = max(min(rank, h.n), 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, w := lowest(i)
			return time.Duration(lo + w/2)
		}
	}
	return 0 // unreachable: the counts add up to n
}
