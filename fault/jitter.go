package fault

import (
	"context"
	"time"
)

// Jitter delays every request through the proxies on its way to the server
// by a random time from 0 to about max (toxiproxy's "latency" toxic on the
// upstream, named apart from Latency's so that the two stack); replies are
// not delayed. It is not a fault but a way to
// widen a black-box store's race windows, the way the verifier's hooks
// sleep inside a Go store: a cache fill that reads the DB before a write
// and reaches Redis after that write's invalidation is the race cache-aside
// loses, and random delays on both make it common. Heal removes it.
func Jitter(proxies []*Proxy, max time.Duration) Nemesis {
	ms := int64((max + time.Millisecond - 1) / time.Millisecond)
	type attrs struct {
		Latency int64 `json:"latency"`
		Jitter  int64 `json:"jitter"`
	}
	// toxiproxy draws latency ± jitter: centre the range on max/2.
	a := attrs{Latency: (ms + 1) / 2, Jitter: (ms + 1) / 2}
	return &toggle{
		name: "jitter",
		inject: func(context.Context) error {
			return onEach(proxies, func(p *Proxy) error {
				return p.addToxic(toxic{Name: "jitter", Type: "latency", Stream: "upstream", Attributes: a})
			})
		},
		heal: func(ctx context.Context) error {
			return onEach(proxies, func(p *Proxy) error {
				return p.removeToxic(ctx, "jitter")
			})
		},
	}
}
