package report

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"strings"
	"time"

	"github.com/memstore/memstore/history"
	"github.com/memstore/memstore/verify"
)

// The plots are inline SVG drawn here, so that the report needs no script
// and no network: time on x (seconds since the run's start), the fault
// windows shaded in the colour of their fault, the workload phase marked.

const (
	plotW      = 860
	plotH      = 210
	padL       = 64 // room for the y labels
	padR       = 12
	padT       = 22 // room for the phase labels
	padB       = 30 // room for the x labels
	innerW     = plotW - padL - padR
	innerH     = plotH - padT - padB
	axisColour = "#9aa3ad"
)

// faultColours gives each fault a hue of its own (a qualitative palette:
// no two alike), by family: Redis process faults red to brown,
// cache-content faults greens, network faults blues and purples, DB
// faults magenta, maroon and olive. The plots shade each window in a
// light tint of its hue (bandColour), the legends show the same tint.
var faultColours = map[string]string{
	"redis-kill":      "#e6194b",
	"redis-restart":   "#f58231",
	"redis-pause":     "#ffe119",
	"redis-oom":       "#9a6324",
	"redis-evict-lru": "#bfef45",
	"evict-keys":      "#3cb44b",
	"flush":           "#469990",
	"latency":         "#42d4f4",
	"reset":           "#4363d8",
	"partition":       "#911eb4",
	"blackhole":       "#000075",
	"db-fail":         "#f032e6",
	"db-fail-commits": "#800000",
	"db-latency":      "#808000",
	"kill-worker":     "#a9a9a9",
	// Redis Cluster: failovers with the process faults, the slot
	// migration with the cache-content faults, a node cut off with the
	// network faults.
	"cluster-crash-failover": "#ff8c69",
	"cluster-failover":       "#c39b77",
	"cluster-lossy-failover": "#5c2e00",
	"slot-migration":         "#006d5b",
	"node-partition":         "#b19cd9",
}

// spareColours are for faults the palette does not know (a user's own
// nemeses), in turn.
var spareColours = []string{"#fabed4", "#dcbeff", "#aaffc3", "#ffd8b1", "#fffac8", "#000000"}

// faultDoc says in a few words what each fault does.
var faultDoc = map[string]string{
	"redis-kill":             "redis-server killed (SIGKILL), restarted empty at heal",
	"redis-restart":          "redis-server killed and restarted at once: every cached entry lost",
	"redis-pause":            "redis-server stopped (SIGSTOP), resumed at heal",
	"redis-oom":              "Redis out of memory: its writes fail",
	"redis-evict-lru":        "Redis evicting keys (allkeys-lru), leases and intents included",
	"evict-keys":             "half of the run's Redis keys deleted at once",
	"flush":                  "every Redis key of the run deleted",
	"latency":                "every Redis round trip 10ms slower",
	"reset":                  "Redis connections reset after the request arrived",
	"partition":              "Redis connections closed and refused",
	"blackhole":              "Redis connections hang",
	"db-fail":                "every DB statement fails",
	"db-fail-commits":        "DB commits apply, then report failure",
	"db-latency":             "every DB statement 20ms slower",
	"kill-worker":            "a worker process killed mid-operation, then restarted",
	"cluster-crash-failover": "a master killed; its replica promoted, the old master back as a replica",
	"cluster-failover":       "a manual CLUSTER FAILOVER: a replica takes over its master's slots",
	"cluster-lossy-failover": "a replica cut off from its master, then promoted: the writes it missed are lost",
	"slot-migration":         "a slot moved to another master under load: clients see ASK and MOVED",
	"node-partition":         "one master cut off from the clients (not from the cluster)",
}

// bandAlpha is how much of a fault's hue its window's tint keeps.
const bandAlpha = 0.42

// bandColour is the tint of hex (#rrggbb) that shades a fault window: the
// hue over white at bandAlpha, opaque, so that the legend's swatch is the
// very colour of the plot.
func bandColour(hex string) string {
	var r, g, b int
	if _, err := fmt.Sscanf(hex, "#%02x%02x%02x", &r, &g, &b); err != nil {
		return hex
	}
	mix := func(c int) int { return int(math.Round(bandAlpha*float64(c) + (1-bandAlpha)*255)) }
	return fmt.Sprintf("#%02x%02x%02x", mix(r), mix(g), mix(b))
}

// faultPalette assigns colours to the fault names of results, the same
// colour to the same fault in every plot of a report: the tints of
// faultColours.
func faultPalette(results []*verify.Result) map[string]string {
	names := make(map[string]bool)
	for _, r := range results {
		for _, f := range r.Faults {
			names[f.Name] = true
		}
	}
	p := make(map[string]string)
	spare := 0
	for _, name := range sortedKeys(names) {
		c, ok := faultColours[name]
		if !ok {
			c = spareColours[spare%len(spareColours)]
			spare++
		}
		p[name] = bandColour(c)
	}
	return p
}

// timeAxis maps nanoseconds since the run's start to x.
type timeAxis struct{ end int64 }

func newTimeAxis(r *verify.Result) timeAxis {
	end := int64(0)
	if n := len(r.Series); n > 0 {
		end = int64(r.Series[n-1].Start + verify.BucketWidth)
	}
	for _, f := range r.Faults {
		end = max(end, f.End)
	}
	return timeAxis{end: max(end, int64(time.Second))}
}

func (a timeAxis) x(t int64) float64 {
	return padL + float64(t)/float64(a.end)*innerW
}

// frame draws what both plots share: the fault windows, the workload
// phase, the x axis with its seconds, and the title.
func frame(b *strings.Builder, r *verify.Result, a timeAxis, palette map[string]string, title string) {
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" class="plot" role="img" aria-label="%s">`, plotW, plotH, html.EscapeString(title))
	for _, f := range r.Faults {
		x0, x1 := a.x(f.Start), a.x(f.End)
		fmt.Fprintf(b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"><title>%s %s–%s</title></rect>`,
			x0, padT, math.Max(x1-x0, 1), innerH, palette[f.Name], html.EscapeString(f.Name), secs(f.Start), secs(f.End))
	}
	if r.History != nil {
		for _, ev := range r.History.Events {
			if ev.Kind != history.Phase || ev.Name != "workload" {
				continue
			}
			x0, x1 := a.x(ev.Start), a.x(ev.End)
			fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#555" stroke-dasharray="4 3"/>`, x0, padT-6, x0, padT+innerH)
			fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#555" stroke-dasharray="4 3"/>`, x1, padT-6, x1, padT+innerH)
			phaseLabel(b, x0, "workload with faults", "workload")
			phaseLabel(b, x1, "heal, quiet, final reads", "heal, checks", "heal")
		}
	}
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s"/>`, padL, padT+innerH, padL+innerW, padT+innerH, axisColour)
	step := tickStep(a.end)
	for t := int64(0); t <= a.end; t += step {
		x := a.x(t)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>`, x, padT+innerH, x, padT+innerH+4, axisColour)
		fmt.Fprintf(b, `<text x="%.1f" y="%d" class="xl">%s</text>`, x, padT+innerH+16, secs(t))
	}
}

// phaseLabel writes the first of labels that fits in the plot's top strip
// from x0 to the right edge: from x0 on, or ending at the edge when it
// starts at most a few pixels before x0. If none fits, nothing: a label is
// never cut off by the edge. labelCharW is a generous width of one
// character of the 11px label font.
func phaseLabel(b *strings.Builder, x0 float64, labels ...string) {
	const labelCharW = 6.4
	edge := float64(plotW - padR)
	for _, label := range labels {
		w := labelCharW * float64(len([]rune(label)))
		switch {
		case x0+4+w <= edge:
			fmt.Fprintf(b, `<text x="%.1f" y="%d" class="phase">%s</text>`, x0+4, padT-8, html.EscapeString(label))
			return
		case edge-w >= x0-12:
			fmt.Fprintf(b, `<text x="%.1f" y="%d" class="phase" text-anchor="end">%s</text>`, edge, padT-8, html.EscapeString(label))
			return
		}
	}
}

// tickStep picks 1, 2, 5, 10 ... seconds so that the x axis has at most
// a dozen ticks.
func tickStep(end int64) int64 {
	for _, s := range []int64{1, 2, 5, 10, 20, 30, 60, 120, 300, 600} {
		if end/(s*int64(time.Second)) <= 12 {
			return s * int64(time.Second)
		}
	}
	return 1200 * int64(time.Second)
}

func secs(t int64) string {
	s := float64(t) / 1e9
	if s == math.Trunc(s) {
		return fmt.Sprintf("%.0fs", s)
	}
	return fmt.Sprintf("%.1fs", s)
}

// LatencyPlot draws the p50 and p99 latency of each 100ms bucket on a
// log scale, over the fault windows.
func LatencyPlot(r *verify.Result, palette map[string]string) template.HTML {
	a := newTimeAxis(r)
	var b strings.Builder
	frame(&b, r, a, palette, "latency over time")
	top := time.Millisecond
	for _, s := range r.Series {
		top = max(top, s.P99)
	}
	lo, hi := math.Log10(float64(100*time.Microsecond)), math.Ceil(math.Log10(float64(top)))
	y := func(d time.Duration) float64 {
		v := math.Log10(math.Max(float64(d), float64(100*time.Microsecond)))
		return padT + innerH - (v-lo)/(hi-lo)*innerH
	}
	for e := lo; e <= hi+1e-9; e++ {
		d := time.Duration(math.Pow(10, e))
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e3e6ea"/>`, padL, y(d), padL+innerW, y(d))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" class="yl">%s</text>`, padL-6, y(d)+4, decade(d))
	}
	line := func(get func(verify.Bucket) time.Duration, colour, name string) {
		var pts [][2]float64
		flush := func() {
			switch len(pts) {
			case 0:
			case 1:
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="1.6" fill="%s"/>`, pts[0][0], pts[0][1], colour)
			default:
				var ps []string
				for _, p := range pts {
					ps = append(ps, fmt.Sprintf("%.1f,%.1f", p[0], p[1]))
				}
				fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.6" points="%s"><title>%s</title></polyline>`, colour, strings.Join(ps, " "), name)
			}
			pts = pts[:0]
		}
		for _, s := range r.Series {
			if s.Ops == 0 {
				flush()
				continue
			}
			pts = append(pts, [2]float64{a.x(int64(s.Start + verify.BucketWidth/2)), y(get(s))})
		}
		flush()
	}
	line(func(s verify.Bucket) time.Duration { return s.P99 }, "#d9480f", "p99")
	line(func(s verify.Bucket) time.Duration { return s.P50 }, "#1c64b5", "p50")
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// ThroughputPlot draws operations per second in each 100ms bucket, the
// share that failed or ended unknown in red, over the fault windows.
func ThroughputPlot(r *verify.Result, palette map[string]string) template.HTML {
	a := newTimeAxis(r)
	var b strings.Builder
	frame(&b, r, a, palette, "throughput over time")
	perSec := float64(time.Second) / float64(verify.BucketWidth)
	top := 1.0
	for _, s := range r.Series {
		top = math.Max(top, float64(s.Ops)*perSec)
	}
	top = niceCeil(top)
	y := func(v float64) float64 { return padT + innerH - v/top*innerH }
	for i := 0; i <= 4; i++ {
		v := top * float64(i) / 4
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e3e6ea"/>`, padL, y(v), padL+innerW, y(v))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" class="yl">%s/s</text>`, padL-6, y(v)+4, compact(v))
	}
	bw := a.x(int64(verify.BucketWidth)) - a.x(0)
	for _, s := range r.Series {
		if s.Ops == 0 {
			continue
		}
		x := a.x(int64(s.Start))
		ok := float64(s.Ops-s.Errors) * perSec
		bad := float64(s.Errors) * perSec
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#4a7fc1"><title>%s: %d ops, %d errors</title></rect>`,
			x, y(ok), math.Max(bw-0.5, 0.5), padT+innerH-y(ok), secs(int64(s.Start)), s.Ops, s.Errors)
		if bad > 0 {
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#d9480f"/>`,
				x, y(ok+bad), math.Max(bw-0.5, 0.5), y(ok)-y(ok+bad))
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// compact formats a count: 950, 1.5k, 20k.
func compact(v float64) string {
	switch {
	case v >= 10000:
		return fmt.Sprintf("%.0fk", v/1000)
	case v >= 1000:
		return fmt.Sprintf("%.1fk", v/1000)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

// decade labels a power of ten of nanoseconds: 100µs, 1ms, 10s.
func decade(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.0fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.0fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	}
}
