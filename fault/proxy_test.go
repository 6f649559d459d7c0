package fault_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/memstore/memstore/fault"
	"github.com/memstore/memstore/memtest"
)

func TestProxyForwards(t *testing.T) {
	t.Parallel()
	rs, p := redisProxy(t)
	if p.Addr() == rs.Addr() || !strings.HasPrefix(p.Addr(), "127.0.0.1:") {
		t.Fatalf("proxy Addr() = %s, want another port of 127.0.0.1", p.Addr())
	}
	c := strictClient(rs, p.Addr(), time.Second)
	if err := c.Set(t.Context(), "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got := rs.Client().Get(t.Context(), "k").Val(); got != "v" {
		t.Errorf("GET k on the server = %q, want v", got)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(t.Context()).Err(); err == nil {
		t.Error("PING through a closed proxy succeeded")
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestLatency(t *testing.T) {
	t.Parallel()
	rs, p := redisProxy(t)
	c := strictClient(rs, p.Addr(), 5*time.Second)
	ping(t, c) // connect first: the latency is per round trip, not per dial

	const latency = 60 * time.Millisecond
	n := fault.Latency([]*fault.Proxy{p}, latency, 0)
	inject(t, n)
	if d := ping(t, c); d < latency {
		t.Errorf("PING under %v latency took %v", latency, d)
	}
	heal(t, n)
	if names := fault.ToxicNames(p); len(names) != 0 {
		t.Errorf("toxics after Heal: %v", names)
	}
	ping(t, c)
}

func TestReset(t *testing.T) {
	t.Parallel()
	rs, p := redisProxy(t)
	ctx := t.Context()
	c := strictClient(rs, p.Addr(), time.Second)
	ping(t, c) // an open connection, which the reset must break

	n := fault.Reset([]*fault.Proxy{p})
	inject(t, n)
	err := c.Set(ctx, "k", "v", 0).Err()
	if err == nil {
		t.Fatal("SET over a reset connection succeeded")
	}
	// The request reached the server before the connection broke: the
	// client's error hides an applied write.
	if got := rs.Client().Get(ctx, "k").Val(); got != "v" {
		t.Errorf("GET k on the server = %q after SET failed with %v; want v (applied)", got, err)
	}
	if err := c.Ping(ctx).Err(); err == nil {
		t.Error("PING over a new connection during reset succeeded")
	}
	heal(t, n)
	ping(t, c)
}

func TestPartition(t *testing.T) {
	t.Parallel()
	rs, p := redisProxy(t)
	ctx := t.Context()
	c := strictClient(rs, p.Addr(), time.Second)
	ping(t, c)

	n := fault.Partition([]*fault.Proxy{p})
	inject(t, n)
	for i := range 2 { // the open connection, then a new one
		if err := c.Ping(ctx).Err(); err == nil {
			t.Fatalf("PING %d through a partition succeeded", i)
		}
	}
	if fault.Enabled(p) {
		t.Error("proxy enabled during partition")
	}
	heal(t, n)
	if !fault.Enabled(p) {
		t.Error("proxy not enabled after Heal")
	}
	ping(t, c)
}

func TestBlackhole(t *testing.T) {
	t.Parallel()
	rs, p := redisProxy(t)
	ctx := t.Context()
	c := strictClient(rs, p.Addr(), 200*time.Millisecond)
	ping(t, c)

	n := fault.Blackhole([]*fault.Proxy{p})
	inject(t, n)
	err := c.Set(ctx, "k", "v", 0).Err()
	var nerr interface{ Timeout() bool }
	if !errors.As(err, &nerr) || !nerr.Timeout() {
		t.Fatalf("SET through a blackhole: %v, want a timeout", err)
	}
	if rs.Client().Exists(ctx, "k").Val() != 0 {
		t.Error("the blackholed SET reached the server")
	}
	heal(t, n)
	if names := fault.ToxicNames(p); len(names) != 0 {
		t.Errorf("toxics after Heal: %v", names)
	}
	ping(t, c)
}

// The network nemeses apply to every proxy they are given.
func TestNetworkFaultsHitEveryProxy(t *testing.T) {
	t.Parallel()
	rs := privateRedis(t)
	var proxies []*fault.Proxy
	for range 3 {
		p, err := fault.NewProxy("redis", rs.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		proxies = append(proxies, p)
	}
	for _, n := range []fault.Nemesis{
		fault.Latency(proxies, time.Millisecond, 0),
		fault.Reset(proxies),
		fault.Partition(proxies),
		fault.Blackhole(proxies),
	} {
		inject(t, n)
		for i, p := range proxies {
			if len(fault.ToxicNames(p)) == 0 && fault.Enabled(p) {
				t.Errorf("%s: proxy %d untouched", n.Name(), i)
			}
		}
		heal(t, n)
		for i, p := range proxies {
			if len(fault.ToxicNames(p)) != 0 || !fault.Enabled(p) {
				t.Errorf("%s: proxy %d not healed: toxics %v, enabled %v", n.Name(), i, fault.ToxicNames(p), fault.Enabled(p))
			}
		}
	}
}

// memtest's PostgreSQL listens on a unix socket only; the proxy reaches it
// through its forwarder, and the faults apply as to Redis.
func TestPostgresProxy(t *testing.T) {
	t.Parallel()
	pg := memtest.Postgres(t)
	up, err := fault.PostgresUpstream(pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	p, err := fault.NewProxy("pg", up)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	dsn, err := fault.PostgresDSNVia(pg.DSN(), p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := fault.PostgresConnector(dsn)
	if err != nil {
		t.Fatal(err)
	}
	sf := fault.NewSQLFaults(conn)
	t.Cleanup(func() { sf.Close() })
	db := sf.DB()
	query := func(ctx context.Context) error {
		var db1 string
		return db.QueryRowContext(ctx, "SELECT current_database()").Scan(&db1)
	}
	if err := query(t.Context()); err != nil {
		t.Fatal(err)
	}

	const latency = 60 * time.Millisecond
	lat := fault.Latency([]*fault.Proxy{p}, latency, 0)
	inject(t, lat)
	start := time.Now()
	if err := query(t.Context()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < latency {
		t.Errorf("query under %v latency took %v", latency, d)
	}
	heal(t, lat)

	part := fault.Partition([]*fault.Proxy{p})
	inject(t, part)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := query(ctx); err == nil {
		t.Fatal("query through a partition succeeded")
	}
	heal(t, part)
	if err := query(t.Context()); err != nil {
		t.Errorf("query after Heal: %v", err)
	}
}

func TestPostgresUpstream(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ dsn, want string }{
		{"postgres://u@/db?host=/tmp/pg&port=5433&sslmode=disable", "unix:/tmp/pg/.s.PGSQL.5433"},
		{"host=/tmp/pg dbname=db", "unix:/tmp/pg/.s.PGSQL.5432"},
		{"postgres://u:pw@127.0.0.1:6000/db", "127.0.0.1:6000"},
		{"host=localhost port=7000", "localhost:7000"},
	} {
		got, err := fault.PostgresUpstream(tc.dsn)
		if err != nil || got != tc.want {
			t.Errorf("PostgresUpstream(%q) = %q, %v; want %q", tc.dsn, got, err, tc.want)
		}
		via, err := fault.PostgresDSNVia(tc.dsn, "127.0.0.1:9999")
		if err != nil {
			t.Errorf("PostgresDSNVia(%q): %v", tc.dsn, err)
			continue
		}
		if got, _ := fault.PostgresUpstream(via); got != "127.0.0.1:9999" {
			t.Errorf("PostgresDSNVia(%q) = %q, which names %q", tc.dsn, via, got)
		}
		if !strings.Contains(via, "db") && strings.Contains(tc.dsn, "db") {
			t.Errorf("PostgresDSNVia(%q) = %q lost the database", tc.dsn, via)
		}
	}
}

// redisProxy starts a private Redis and a proxy in front of it.
func redisProxy(t testing.TB) (*memtest.RedisServer, *fault.Proxy) {
	t.Helper()
	rs := privateRedis(t)
	p, err := fault.NewProxy("redis", rs.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return rs, p
}
