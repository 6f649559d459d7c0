package verify_test

import (
	"flag"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/memstore/memstore/memtest"
	"github.com/memstore/memstore/strategies"
	"github.com/memstore/memstore/verify"
)

var (
	sweep         = flag.Bool("sweep", false, "run the detection sweep: every known-bad strategy with -sweep.seeds seeds")
	sweepSeeds    = flag.Int("sweep.seeds", 20, "seeds per strategy in the sweep")
	sweepDuration = flag.Duration("sweep.duration", 5*time.Second, "workload duration of each sweep run")
	sweepStores   = flag.String("sweep.stores", "", "comma-separated stores to sweep (default: the known-bad ones)")
	sweepFaults   = flag.String("sweep.faults", "", "comma-separated faults of the sweep runs (default: verify's; none for none)")
	sweepParallel = flag.Int("sweep.parallel", 1, "runs at once")
	sweepAblate   = flag.String("sweep.without", "", "comma-separated aids to turn off, to measure what each is worth: delay, evict, readwindows, finalreads")
)

// sweepRow is one strategy's line of the detection table.
type sweepRow struct {
	store   string
	caught  int
	runs    int
	fired   map[string]int
	ttd     []time.Duration
	ops     int
	elapsed time.Duration
}

func (r *sweepRow) String() string {
	var fired []string
	for _, k := range mapsKeys(r.fired) {
		fired = append(fired, fmt.Sprintf("%s %d", k, r.fired[k]))
	}
	med := "-"
	if len(r.ttd) > 0 {
		slices.Sort(r.ttd)
		med = r.ttd[len(r.ttd)/2].Round(time.Millisecond).String()
	}
	return fmt.Sprintf("| %-22s | %2d/%-2d | %-8s | %6d | %s |", r.store, r.caught, r.runs, med, r.ops/max(r.runs, 1), strings.Join(fired, ", "))
}

func mapsKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// TestSweep measures detection: each known-bad strategy against many seeds,
// reporting how many runs caught it, which checks fired, and the median
// time to first detection. It runs only with -sweep:
//
//	go test ./verify -run Sweep -sweep -v
func TestSweep(t *testing.T) {
	if !*sweep {
		t.Skip("the detection sweep runs with -sweep")
	}
	stores := knownBad()
	if *sweepStores != "" {
		stores = nil
		for _, n := range strings.Split(*sweepStores, ",") {
			f, err := lookup(n)
			if err != nil {
				t.Fatal(err)
			}
			stores = append(stores, f)
		}
	}
	var faults []string
	if *sweepFaults != "" {
		faults = strings.Split(*sweepFaults, ",")
	}
	rs := memtest.RedisWith(t, &memtest.RedisOptions{Private: true})
	var table []string
	for _, f := range stores {
		row := &sweepRow{store: f.Name, fired: map[string]int{}}
		var mu sync.Mutex
		sem := make(chan struct{}, *sweepParallel)
		var wg sync.WaitGroup
		for seed := int64(1); seed <= int64(*sweepSeeds); seed++ {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				start := time.Now()
				cfg := verify.Config{Store: f, Redis: rs, Seed: seed, Duration: *sweepDuration, Faults: faults}
				for _, a := range strings.Split(*sweepAblate, ",") {
					switch a {
					case "delay":
						cfg.NoDelay = true
					case "evict":
						cfg.NoEvict = true
					case "readwindows":
						cfg.NoReadWindows = true
					case "finalreads":
						cfg.NoFinalReads = true
					case "":
					default:
						t.Fatalf("unknown -sweep.without %q", a)
					}
				}
				r, err := verify.Run(t.Context(), cfg)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				row.runs++
				row.ops += r.Ops
				row.elapsed += time.Since(start)
				if r.Caught() {
					row.caught++
					row.ttd = append(row.ttd, r.TimeToDetection)
				}
				for _, c := range r.Fired() {
					row.fired[c]++
				}
				t.Logf("%s seed %d: %s", f.Name, seed, r.Summary())
			})
		}
		wg.Wait()
		table = append(table, row.String())
	}
	t.Logf("detection over %d seeds, %v workload each (faults %v, without %q):\n| store                  | caught | median TTD | ops/run | checks fired (runs) |\n%s",
		*sweepSeeds, *sweepDuration, faultsLabel(faults), *sweepAblate, strings.Join(table, "\n"))
}

func faultsLabel(f []string) string {
	if f == nil {
		return "default"
	}
	return strings.Join(f, ",")
}

func knownBad() []strategies.Factory {
	var out []strategies.Factory
	for _, f := range strategies.All() {
		if !f.ExpectPass {
			out = append(out, f)
		}
	}
	return out
}

func lookup(name string) (strategies.Factory, error) {
	if name == strategies.DBOnly().Name {
		return strategies.DBOnly(), nil
	}
	return strategies.Lookup(name)
}
