package schedule

import (
	"math"
	"math/rand/v2"
	"strconv"
)

// maxStates bounds the memo of a space's count; past it the count ignores
// the actors' order constraints.
const maxStates = 1 << 20

// space is the set of interleavings of actors that each pass a fixed number
// of decision points, where an actor that starts after others (Actor.After)
// takes its first point only once they have taken all of theirs. It is the
// model the scheduler's real tree approximates: the real number of points
// varies with the interleaving (a read that finds a write intent skips its
// fill).
type space struct {
	points []int
	deps   [][]int
	memo   map[string]float64 // positions -> interleavings from there; nil: too big
}

func newSpace(points []int, deps [][]int) *space {
	s := &space{points: points, deps: deps}
	states := 1.0
	for _, n := range points {
		states *= float64(n + 1)
	}
	if states <= maxStates {
		s.memo = make(map[string]float64)
	}
	return s
}

// count returns the number of interleavings.
func (s *space) count() float64 {
	if s.memo == nil {
		return multinomial(s.points)
	}
	return s.from(make([]int, len(s.points)))
}

func (s *space) can(pos []int, i int) bool {
	if pos[i] >= s.points[i] {
		return false
	}
	if pos[i] == 0 {
		for _, d := range s.deps[i] {
			if pos[d] < s.points[d] {
				return false
			}
		}
	}
	return true
}

func (s *space) from(pos []int) float64 {
	var kb []byte
	for _, p := range pos {
		kb = strconv.AppendInt(kb, int64(p), 10)
		kb = append(kb, ',')
	}
	k := string(kb)
	if v, ok := s.memo[k]; ok {
		return v
	}
	total, moved := 0.0, false
	for i := range pos {
		if s.can(pos, i) {
			moved = true
			pos[i]++
			total += s.from(pos)
			pos[i]--
		}
	}
	if !moved {
		total = 1
	}
	s.memo[k] = total
	return total
}

// sample returns one interleaving, as the sequence of actor indexes, drawn
// uniformly from the space.
func (s *space) sample(rng *rand.Rand) []int {
	var seq []int
	if s.memo == nil {
		for i, n := range s.points {
			for range n {
				seq = append(seq, i)
			}
		}
		rng.Shuffle(len(seq), func(i, j int) { seq[i], seq[j] = seq[j], seq[i] })
		return seq
	}
	pos := make([]int, len(s.points))
	weights := make([]float64, len(pos))
	for {
		total := 0.0
		for i := range pos {
			weights[i] = 0
			if s.can(pos, i) {
				pos[i]++
				weights[i] = s.from(pos)
				pos[i]--
				total += weights[i]
			}
		}
		if total == 0 {
			return seq
		}
		x := rng.Float64() * total
		pick := -1
		for i, w := range weights {
			if w == 0 {
				continue
			}
			pick = i
			if x < w {
				break
			}
			x -= w
		}
		pos[pick]++
		seq = append(seq, pick)
	}
}

// multinomial is (Σn)! / Π(n!), the interleavings of unconstrained actors.
func multinomial(points []int) float64 {
	r, k := 1.0, 0
	for _, n := range points {
		for j := 1; j <= n; j++ {
			k++
			r = r * float64(k) / float64(j)
		}
	}
	return math.Round(r)
}
