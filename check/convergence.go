package check

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
)

// KeySnapshot is what the cache and the DB hold for one key after heal. The
// engine fills it with comparable bytes: the decoded value bytes of each
// tier, not their encodings.
type KeySnapshot struct {
	Key string `json:"key"`
	// CachePresent: the cache holds a value for the key (CacheBytes).
	CachePresent bool   `json:"cache_present"`
	CacheBytes   []byte `json:"cache_bytes,omitempty"`
	// CacheNotFound: the cache holds a "not found" entry (a cached miss).
	// Leave both CachePresent and CacheNotFound false when the cache holds
	// nothing for the key, or an entry the store would drop unread
	// (corrupt, foreign, or under a write intent).
	CacheNotFound bool `json:"cache_not_found,omitempty"`
	// DBPresent: the DB holds a row for the key (DBBytes); false for no row
	// or a tombstone.
	DBPresent bool   `json:"db_present"`
	DBBytes   []byte `json:"db_bytes,omitempty"`
}

// ConvergenceResult says whether cache and DB agree after heal: for every
// key, the cache holds nothing, or exactly what the DB holds.
type ConvergenceResult struct {
	Verdict   Verdict      `json:"verdict"`
	Keys      int          `json:"keys"`
	Divergent []Divergence `json:"divergent"`
}

// Divergence is one key on which the cache would serve something other than
// the DB's value.
type Divergence struct {
	Key    string `json:"key"`
	Reason string `json:"reason"`
}

// Convergence checks a snapshot of cache and DB taken after heal.
func Convergence(snap []KeySnapshot) ConvergenceResult {
	r := ConvergenceResult{Verdict: Ok, Keys: len(snap), Divergent: []Divergence{}}
	for _, s := range snap {
		var reason string
		switch {
		case s.CachePresent && s.CacheNotFound:
			reason = "the snapshot says the cache holds both a value and a cached miss"
		case s.CacheNotFound && s.DBPresent:
			reason = fmt.Sprintf("the cache holds a cached miss, the DB holds %s", quoteBytes(s.DBBytes))
		case s.CachePresent && !s.DBPresent:
			reason = fmt.Sprintf("the cache holds %s, the DB has no row", quoteBytes(s.CacheBytes))
		case s.CachePresent && !bytes.Equal(s.CacheBytes, s.DBBytes):
			reason = fmt.Sprintf("the cache holds %s, the DB holds %s", quoteBytes(s.CacheBytes), quoteBytes(s.DBBytes))
		default:
			continue
		}
		r.Divergent = append(r.Divergent, Divergence{Key: s.Key, Reason: reason})
	}
	sort.Slice(r.Divergent, func(i, j int) bool { return r.Divergent[i].Key < r.Divergent[j].Key })
	if len(r.Divergent) > 0 {
		r.Verdict = Illegal
	}
	return r
}

// quoteBytes shows a value for a person: quoted, cut after 64 bytes.
func quoteBytes(b []byte) string {
	const limit = 64
	if len(b) > limit {
		return strconv.Quote(string(b[:limit])) + fmt.Sprintf("… (%d bytes)", len(b))
	}
	return strconv.Quote(string(b))
}

// StampedeResult counts DB loads per cold key: when many readers miss the
// same cold key at once, one rebuild should load it.
type StampedeResult struct {
	// Verdict is Illegal when some cold key was loaded more than Limit
	// times.
	Verdict Verdict `json:"verdict"`
	Limit   int     `json:"limit"`
	Keys    int     `json:"keys"`
	// Total, Max and Mean are over the cold keys (a cold key with no
	// recorded load counts as 0).
	Total  int     `json:"total"`
	Max    int     `json:"max"`
	MaxKey string  `json:"max_key,omitempty"`
	Mean   float64 `json:"mean"`
	// Over lists the cold keys loaded more than Limit times, by key.
	Over []KeyLoads `json:"over"`
}

// KeyLoads is the DB load count of one key.
type KeyLoads struct {
	Key   string `json:"key"`
	Loads int    `json:"loads"`
}

// Stampede summarizes DB loads per cold key from the counts the engine
// recorded (loads, by key) during a phase in which coldKeys were cold. It
// allows DefaultMaxColdLoads loads per key; All uses Options.MaxColdLoads.
func Stampede(loads map[string]int, coldKeys []string) StampedeResult {
	return stampede(loads, coldKeys, DefaultMaxColdLoads)
}

func stampede(loads map[string]int, coldKeys []string, limit int) StampedeResult {
	r := StampedeResult{Verdict: Ok, Limit: limit, Over: []KeyLoads{}}
	seen := make(map[string]bool, len(coldKeys))
	for _, k := range coldKeys {
		if seen[k] {
			continue
		}
		seen[k] = true
		n := loads[k]
		r.Keys++
		r.Total += n
		if n > r.Max || r.Keys == 1 {
			r.Max, r.MaxKey = n, k
		}
		if n > limit {
			r.Over = append(r.Over, KeyLoads{Key: k, Loads: n})
		}
	}
	if r.Keys > 0 {
		r.Mean = float64(r.Total) / float64(r.Keys)
	}
	sort.Slice(r.Over, func(i, j int) bool { return r.Over[i].Key < r.Over[j].Key })
	if len(r.Over) > 0 {
		r.Verdict = Illegal
	}
	return r
}
