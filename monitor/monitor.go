// Package monitor is an online consistency monitor for a cache-aside
// store: it samples the entries a Redis cache holds and compares each with
// its row in the database, within a load budget, and says in numbers
// whether the cache agrees with the database. It is read-only: SCAN, GET
// or HGET, and SELECT.
//
// A sample that disagrees is not yet an inconsistency: the monitor read
// the cache, then the row, and a write may have landed in between, or be
// in flight (a memstore write intent is live). So it re-checks the key
// after each window Δt of Config.Windows. "Stale" means the cache still
// serves a value older than a row that had been committed for longer than
// Δt: the row the monitor read was committed before it read it, and the
// cache still serves the older entry Δt later.
//
// The figure it reports is Polaris's: for each Δt, the share of sampled
// entries that were consistent within Δt ("N nines within M seconds"),
// plus the worst staleness seen, and the key and versions of every entry
// still stale after the largest Δt. The shares are lower bounds: an entry
// counts as consistent within Δt only once a check by then saw it agree.
//
// Layouts: Memstore reads a memstore namespace; Plain describes another
// cache-aside layout (a key pattern, a SQL query by key, a decode
// function); any Layout will do.
package monitor

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"
)

// Config configures a Monitor. The zero value of every field but Redis and
// Layout means its default.
type Config struct {
	// Redis is SCANned for the cache entries (every master of a cluster).
	Redis redis.UniversalClient
	// Layout reads entries and rows.
	Layout Layout
	// Name labels the reports and metrics (the namespace). Default "".
	Name string
	// SampleRate is the share of the entries SCAN returns that are
	// checked, in (0, 1]. Default 1.
	SampleRate float64
	// RedisOps and DBOps are the load budget: Redis commands and SQL
	// queries per second, SCANs and re-checks included. Default 100 and 50.
	RedisOps, DBOps float64
	// ScanCount is SCAN's COUNT hint. Default 100.
	ScanCount int
	// Windows are the Δt within which consistency is measured, in
	// increasing order; 0 is the first check itself. Default 0, 1s, 5s, 30s.
	Windows []time.Duration
	// Passes stops Run after that many full SCANs of the keyspace, once
	// their re-checks are done. Default 0: until the context ends.
	Passes int
	// MaxTracked bounds the disagreements re-checked at once; past it new
	// ones are counted as undecided. Default 10000.
	MaxTracked int
}

func (c Config) withDefaults() (Config, error) {
	if c.Redis == nil || c.Layout == nil {
		return c, errors.New("monitor: Config needs Redis and a Layout")
	}
	if c.SampleRate == 0 {
		c.SampleRate = 1
	}
	if c.SampleRate < 0 || c.SampleRate > 1 {
		return c, fmt.Errorf("monitor: SampleRate %v: want a share in (0, 1]", c.SampleRate)
	}
	if c.RedisOps == 0 {
		c.RedisOps = 100
	}
	if c.DBOps == 0 {
		c.DBOps = 50
	}
	if c.RedisOps < 1 || c.DBOps < 1 {
		return c, fmt.Errorf("monitor: budgets of %v Redis and %v DB ops/s: want at least 1 each", c.RedisOps, c.DBOps)
	}
	if c.ScanCount <= 0 {
		c.ScanCount = 100
	}
	if len(c.Windows) == 0 {
		c.Windows = []time.Duration{0, time.Second, 5 * time.Second, 30 * time.Second}
	}
	if !sort.SliceIsSorted(c.Windows, func(i, j int) bool { return c.Windows[i] < c.Windows[j] }) || c.Windows[0] < 0 {
		return c, fmt.Errorf("monitor: Windows %v: want non-negative durations in increasing order", c.Windows)
	}
	if c.MaxTracked <= 0 {
		c.MaxTracked = 10000
	}
	return c, nil
}

// Monitor samples one layout. Run it once; Summary may be called at any
// time, from any goroutine.
type Monitor struct {
	cfg       Config
	redisRate *rate.Limiter
	dbRate    *rate.Limiter

	redisOps, dbOps, errs atomic.Int64

	mu      sync.Mutex
	start   time.Time
	end     time.Time
	passes  int
	scanned int64
	sampled int64
	agreed  int64 // at the first check
	vanish  int64 // entries gone between SCAN and the read
	tracked []*tracked
	dropped int64 // disagreements not tracked (MaxTracked)
	lastErr error
}

// tracked is one disagreement being re-checked.
type tracked struct {
	key      string
	at       time.Time // when the row was read
	cache    Entry     // what the cache served then
	row      Entry     // the row then
	intent   bool      // a write was in flight then
	next     int       // index of the next window to re-check at
	due      time.Time
	lastRow  Entry
	stale    time.Duration // longest time after at that the cache was seen still stale (the last look)
	resolved time.Duration // when a check first saw it resolved (-1: not yet)
}

// New returns a monitor for cfg.
func New(cfg Config) (*Monitor, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Monitor{
		cfg:       cfg,
		redisRate: rate.NewLimiter(rate.Limit(cfg.RedisOps), burst(cfg.RedisOps)),
		dbRate:    rate.NewLimiter(rate.Limit(cfg.DBOps), burst(cfg.DBOps)),
	}, nil
}

// burst is a budget's bucket: a twentieth of a second's worth, at least 1.
func burst(perSec float64) int { return max(1, int(perSec/20)) }

// Burst returns the token buckets' sizes (Redis, DB): how far the ops in
// any interval may exceed budget × interval.
func (m *Monitor) Burst() (redisOps, dbOps int) {
	return burst(m.cfg.RedisOps), burst(m.cfg.DBOps)
}

func (m *Monitor) redisOp(ctx context.Context) error {
	if err := m.redisRate.Wait(ctx); err != nil {
		return err
	}
	m.redisOps.Add(1)
	return nil
}

func (m *Monitor) dbOp(ctx context.Context) error {
	if err := m.dbRate.Wait(ctx); err != nil {
		return err
	}
	m.dbOps.Add(1)
	return nil
}

// Run samples until ctx ends or Config.Passes passes are done, and returns
// nil then. It returns an error only if the first SCAN fails (nothing
// reachable); later failures are counted, and the monitor goes on.
func (m *Monitor) Run(ctx context.Context) error {
	m.mu.Lock()
	m.start = time.Now()
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.end = time.Now()
		m.mu.Unlock()
	}()
	nodes, err := m.nodes(ctx)
	if err != nil {
		return err
	}
	first := true
	for pass := 0; m.cfg.Passes == 0 || pass < m.cfg.Passes; pass++ {
		for _, node := range nodes {
			var cursor uint64
			for {
				m.recheckDue(ctx)
				if ctx.Err() != nil {
					return nil
				}
				if m.redisOp(ctx) != nil {
					return nil
				}
				keys, next, err := node.Scan(ctx, cursor, m.cfg.Layout.Pattern(), int64(m.cfg.ScanCount)).Result()
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					if first {
						return fmt.Errorf("monitor: SCAN: %w", err)
					}
					m.fail(err)
					sleep(ctx, 100*time.Millisecond)
					continue
				}
				first = false
				m.mu.Lock()
				m.scanned += int64(len(keys))
				m.mu.Unlock()
				for _, rk := range keys {
					if m.cfg.SampleRate < 1 && rand.Float64() >= m.cfg.SampleRate {
						continue
					}
					if key, ok := m.cfg.Layout.Key(rk); ok {
						m.check(ctx, key)
					}
					m.recheckDue(ctx)
					if ctx.Err() != nil {
						return nil
					}
				}
				if cursor = next; cursor == 0 {
					break
				}
			}
		}
		m.mu.Lock()
		m.passes++
		m.mu.Unlock()
	}
	// The passes are done: finish the re-checks they started.
	for {
		m.mu.Lock()
		var due time.Time
		for _, t := range m.tracked {
			if t.resolved < 0 && t.next < len(m.cfg.Windows) && (due.IsZero() || t.due.Before(due)) {
				due = t.due
			}
		}
		m.mu.Unlock()
		if due.IsZero() {
			return nil
		}
		sleep(ctx, time.Until(due))
		if ctx.Err() != nil {
			return nil
		}
		m.recheckDue(ctx)
	}
}

// nodes returns what to SCAN: every master of a cluster, else the client.
func (m *Monitor) nodes(ctx context.Context) ([]redis.Cmdable, error) {
	cc, ok := m.cfg.Redis.(*redis.ClusterClient)
	if !ok {
		return []redis.Cmdable{m.cfg.Redis}, nil
	}
	var mu sync.Mutex
	var out []redis.Cmdable
	err := cc.ForEachMaster(ctx, func(_ context.Context, c *redis.Client) error {
		mu.Lock()
		out = append(out, c)
		mu.Unlock()
		return nil
	})
	return out, err
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func (m *Monitor) fail(err error) {
	m.errs.Add(1)
	m.mu.Lock()
	m.lastErr = err
	m.mu.Unlock()
}

// read reads key's cache entry, then its row (in this order: the row is
// then at least as new as the entry it is compared with).
func (m *Monitor) read(ctx context.Context, key string) (c, row Entry, at time.Time, ok bool) {
	if m.redisOp(ctx) != nil {
		return c, row, at, false
	}
	c, err := m.cfg.Layout.Cache(ctx, key)
	if err != nil {
		if ctx.Err() == nil {
			m.fail(fmt.Errorf("read the cache entry of %q: %w", key, err))
		}
		return c, row, at, false
	}
	if !c.Cached {
		return c, row, time.Now(), true
	}
	if m.dbOp(ctx) != nil {
		return c, row, at, false
	}
	row, err = m.cfg.Layout.Row(ctx, key)
	if err != nil {
		if ctx.Err() == nil {
			m.fail(fmt.Errorf("read the row of %q: %w", key, err))
		}
		return c, row, at, false
	}
	return c, row, time.Now(), true
}

// check samples one key.
func (m *Monitor) check(ctx context.Context, key string) {
	c, row, at, ok := m.read(ctx, key)
	if !ok {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !c.Cached {
		m.vanish++ // expired, evicted or dropped since SCAN: nothing served
		return
	}
	m.sampled++
	if agree(m.cfg.Layout.Versioned(), c, row) {
		m.agreed++
		return
	}
	if len(m.tracked) >= m.cfg.MaxTracked {
		m.dropped++
		return
	}
	t := &tracked{key: key, at: at, cache: c, row: row, lastRow: row, resolved: -1}
	m.schedule(t)
	m.tracked = append(m.tracked, t)
	if f, ok := m.cfg.Layout.(InFlight); ok {
		m.mu.Unlock()
		var live bool
		var err error
		if err = m.redisOp(ctx); err == nil {
			live, err = f.WriteInFlight(ctx, key)
		}
		m.mu.Lock()
		if err == nil {
			t.intent = live
		}
	}
}

// schedule sets t's next re-check within its next window: at a quarter,
// a half and three quarters of it, and just before it ends (a tenth of the
// window early, at most 50ms), whichever is first after the last look.
// Most disagreements are a write landing between the two reads, over in a
// millisecond or two, and the rest (a repair by a reconciler) take a while:
// several looks credit each to the window it resolved in even when the
// host is too busy for any one look to be on time. Called with m.mu held.
func (m *Monitor) schedule(t *tracked) {
	w := m.cfg.Windows
	for t.next < len(w) && w[t.next] <= t.stale {
		t.next++
	}
	if t.next >= len(w) {
		if t.resolved < 0 {
			// Stale past the largest window: keep watching it, every
			// largest window, to measure how long it stays stale.
			last := w[len(w)-1]
			t.due = time.Now().Add(max(last, time.Second))
		}
		return
	}
	d := w[t.next]
	end := d - min(d/10, 50*time.Millisecond)
	for _, off := range []time.Duration{d / 4, d / 2, 3 * d / 4} {
		if off > t.stale && off < end {
			t.due = t.at.Add(off)
			return
		}
	}
	t.due = t.at.Add(end)
}

// recheckDue re-checks the tracked disagreements that are due.
func (m *Monitor) recheckDue(ctx context.Context) {
	for ctx.Err() == nil {
		now := time.Now()
		m.mu.Lock()
		var t *tracked
		for _, c := range m.tracked {
			if c.resolved < 0 && !c.due.IsZero() && !c.due.After(now) && (t == nil || c.due.Before(t.due)) {
				t = c
			}
		}
		m.mu.Unlock()
		if t == nil {
			return
		}
		c, row, at, ok := m.read(ctx, t.key)
		if !ok {
			m.mu.Lock()
			t.due = time.Now().Add(100 * time.Millisecond)
			m.mu.Unlock()
			continue
		}
		m.mu.Lock()
		elapsed := at.Sub(t.at)
		if c.Cached {
			t.lastRow = row
		}
		if m.resolvedNow(t, c, row) {
			t.resolved = elapsed
			t.due = time.Time{}
		} else {
			t.stale = max(t.stale, elapsed)
			m.schedule(t)
		}
		m.mu.Unlock()
	}
}

// resolvedNow reports whether the cache no longer serves the entry that
// disagreed with t.row: it is gone, it agrees with the row now, or it has
// moved on (versioned: to a version at least the row's; unversioned: to
// other bytes).
func (m *Monitor) resolvedNow(t *tracked, c, row Entry) bool {
	versioned := m.cfg.Layout.Versioned()
	switch {
	case !c.Cached, agree(versioned, c, row):
		return true
	case versioned:
		return t.cache.Version <= t.row.Version && c.Version > t.row.Version
	}
	return c.Found != t.cache.Found || string(c.Value) != string(t.cache.Value)
}

// Summary is what the monitor saw so far.
type Summary struct {
	Name     string        `json:"name"`
	Elapsed  time.Duration `json:"elapsed_ns"`
	Passes   int           `json:"passes"`
	Scanned  int64         `json:"scanned"`  // keys SCAN returned
	Sampled  int64         `json:"sampled"`  // entries checked (served from the cache when read)
	Vanished int64         `json:"vanished"` // sampled keys gone by the time they were read
	Agreed   int64         `json:"agreed"`   // consistent at the first check
	// Disagreed were not, and were re-checked. InFlight of them resolved
	// within the largest window (a write was landing), Stale did not.
	// Undecided are still being re-checked, or were not tracked.
	Disagreed int64 `json:"disagreed"`
	InFlight  int64 `json:"in_flight"`
	Intents   int64 `json:"intents"` // disagreements with a live write intent at the first check
	Stale     int64 `json:"stale"`
	Undecided int64 `json:"undecided"`
	// Windows gives, per Δt, the share of the decided samples that were
	// consistent within it.
	Windows []Window `json:"windows"`
	// WorstStaleness is the longest the monitor saw a cache entry stay
	// stale after its row was read.
	WorstStaleness  time.Duration   `json:"worst_staleness_ns"`
	Inconsistencies []Inconsistency `json:"inconsistencies"`
	// The load the monitor put on each tier.
	RedisOps     int64   `json:"redis_ops"`
	DBOps        int64   `json:"db_ops"`
	RedisOpsPerS float64 `json:"redis_ops_per_s"`
	DBOpsPerS    float64 `json:"db_ops_per_s"`
	Errors       int64   `json:"errors"`
	LastError    string  `json:"last_error,omitempty"`
}

// Window is the figure for one Δt.
type Window struct {
	Within     time.Duration `json:"within_ns"`
	Decided    int64         `json:"decided"`
	Consistent int64         `json:"consistent"`
	Share      float64       `json:"share"` // Consistent / Decided (1 with nothing decided)
	// Nines is -log10(1 - Share). With no inconsistency it is the
	// resolution the sample allows, log10(Decided), and AtLeast is set.
	Nines   float64 `json:"nines"`
	AtLeast bool    `json:"at_least,omitempty"`
}

// Inconsistency is one entry the cache served stale past the largest
// window.
type Inconsistency struct {
	Key           string        `json:"key"`
	CacheVersion  uint64        `json:"cache_version"`
	RowVersion    uint64        `json:"row_version"`           // the row the cache disagreed with
	RowVersionNow uint64        `json:"row_version_now"`       // at the last check
	CacheValue    string        `json:"cache_value,omitempty"` // the first 64 bytes, for unversioned layouts
	RowValue      string        `json:"row_value,omitempty"`
	CacheFound    bool          `json:"cache_found"`
	RowFound      bool          `json:"row_found"`
	Intent        bool          `json:"intent"` // a write was in flight at the first check
	Seen          time.Time     `json:"seen"`
	StaleFor      time.Duration `json:"stale_for_ns"` // at least
	Resolved      bool          `json:"resolved"`     // resolved later, after StaleFor
}

// Summary returns the figures so far.
func (m *Monitor) Summary() Summary {
	m.mu.Lock()
	defer m.mu.Unlock()
	end := m.end
	if end.IsZero() {
		end = time.Now()
	}
	s := Summary{
		Name: m.cfg.Name, Passes: m.passes, Scanned: m.scanned, Sampled: m.sampled,
		Vanished: m.vanish, Agreed: m.agreed, Disagreed: m.sampled - m.agreed,
		Undecided: m.dropped, RedisOps: m.redisOps.Load(), DBOps: m.dbOps.Load(), Errors: m.errs.Load(),
		Inconsistencies: []Inconsistency{}, // [] in JSON, not null
	}
	if !m.start.IsZero() {
		s.Elapsed = end.Sub(m.start)
	}
	if secs := s.Elapsed.Seconds(); secs > 0 {
		s.RedisOpsPerS, s.DBOpsPerS = float64(s.RedisOps)/secs, float64(s.DBOps)/secs
	}
	if m.lastErr != nil {
		s.LastError = m.lastErr.Error()
	}
	w := m.cfg.Windows
	last := w[len(w)-1]
	s.Windows = make([]Window, len(w))
	for i, d := range w {
		s.Windows[i] = Window{Within: d, Decided: m.agreed, Consistent: m.agreed}
	}
	for _, t := range m.tracked {
		s.WorstStaleness = max(s.WorstStaleness, t.stale)
		if t.intent {
			s.Intents++
		}
		for i, d := range w {
			switch {
			case t.resolved >= 0 && t.resolved <= d:
				s.Windows[i].Decided++
				s.Windows[i].Consistent++
			case t.resolved > d || t.stale >= d:
				s.Windows[i].Decided++
			}
		}
		switch {
		case t.resolved >= 0 && t.resolved <= last:
			s.InFlight++
		case t.stale >= last || t.resolved > last:
			s.Stale++
			inc := Inconsistency{
				Key: t.key, CacheVersion: t.cache.Version, RowVersion: t.row.Version, RowVersionNow: t.lastRow.Version,
				CacheFound: t.cache.Found, RowFound: t.row.Found, Intent: t.intent,
				Seen: t.at, StaleFor: t.stale, Resolved: t.resolved >= 0,
			}
			if !m.cfg.Layout.Versioned() {
				inc.CacheValue, inc.RowValue = clip(t.cache.Value), clip(t.row.Value)
			}
			s.Inconsistencies = append(s.Inconsistencies, inc)
		default:
			s.Undecided++
		}
	}
	for i := range s.Windows {
		win := &s.Windows[i]
		win.Share = 1
		if win.Decided > 0 {
			win.Share = float64(win.Consistent) / float64(win.Decided)
		}
		if win.Share < 1 {
			win.Nines = -math.Log10(1 - win.Share)
		} else if win.Decided > 0 {
			win.Nines, win.AtLeast = math.Log10(float64(win.Decided)), true
		}
	}
	sort.Slice(s.Inconsistencies, func(i, j int) bool { return s.Inconsistencies[i].Key < s.Inconsistencies[j].Key })
	return s
}

func clip(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "…"
	}
	return string(b)
}

// Line is the one-line live summary of s.
func (s Summary) Line() string {
	out := fmt.Sprintf("%s sampled %d", s.Name, s.Sampled)
	for _, w := range s.Windows {
		out += fmt.Sprintf(" | ≤%v %s", w.Within, w.percent())
	}
	out += fmt.Sprintf(" | stale %d, worst %v | redis %.0f/s db %.0f/s", s.Stale, s.WorstStaleness.Round(time.Millisecond), s.RedisOpsPerS, s.DBOpsPerS)
	if s.Errors > 0 {
		out += fmt.Sprintf(" | %d errors", s.Errors)
	}
	return out
}

// percent is the share as a percentage and in nines.
func (w Window) percent() string {
	if w.Decided == 0 {
		return "—"
	}
	pct := 100 * w.Share
	if w.AtLeast {
		return fmt.Sprintf("100%% (≥%.1f nines)", w.Nines)
	}
	return fmt.Sprintf("%.3f%% (%.1f nines)", pct, w.Nines)
}
