package verify_test

import (
	"testing"
	"time"

	"github.com/memstore/memstore/memtest"
	"github.com/memstore/memstore/strategies"
	"github.com/memstore/memstore/verify"
)

func TestSmoke(t *testing.T) {
	for _, f := range append(strategies.All(), strategies.DBOnly()) {
		t.Run(f.Name, func(t *testing.T) {
			rs := memtest.RedisWith(t, &memtest.RedisOptions{Private: true})
			r, err := verify.Run(t.Context(), verify.Config{Store: f, Redis: rs, Duration: 2 * time.Second, Seed: 1, Processes: 1})
			if err != nil {
				t.Fatal(err)
			}
			t.Log(r.Summary())
			t.Log(r.Problems())
			t.Log(r.Notes)
			t.Logf("lat %+v stampede %+v elapsed %v", r.Latency, r.Stampede, r.Elapsed)
		})
	}
}
