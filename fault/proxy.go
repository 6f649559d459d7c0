package fault

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/toxics"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rs/zerolog"
)

// Proxy is a TCP proxy on 127.0.0.1 between one store instance and one
// server (Redis or PostgreSQL), run in-process by toxiproxy, through which
// the network nemeses add latency, reset connections and partition. Give
// every store instance its own proxies, so that a fault can hit some
// instances and spare others.
//
// Its methods are safe for concurrent use.
type Proxy struct {
	name     string
	addr     string
	upstream string
	tp       *toxiproxy.Proxy
	fwd      *forwarder // unix socket upstreams only

	mu     sync.Mutex
	closed bool
}

// NewProxy starts a proxy listening on a free port of 127.0.0.1 that
// forwards every connection to upstream: a TCP address (host:port), or
// "unix:" and the path of a unix socket.
//
// toxiproxy dials only TCP upstreams. A unix socket upstream, such as the
// private PostgreSQL cluster of memtest, which listens on no TCP port, gets
// a second, plain forwarder in front of it on 127.0.0.1: toxiproxy's
// upstream is that forwarder, so the toxics apply the same way, and a
// connection the proxy closes closes its unix socket connection too. See
// PostgresUpstream and PostgresDSNVia.
func NewProxy(name, upstream string) (*Proxy, error) {
	p := &Proxy{name: name, upstream: upstream}
	target := upstream
	if path, ok := strings.CutPrefix(upstream, "unix:"); ok {
		fwd, err := startForwarder("unix", path)
		if err != nil {
			return nil, fmt.Errorf("fault: proxy %s: %w", name, err)
		}
		p.fwd = fwd
		target = fwd.addr()
	}
	// One ApiServer per proxy: it is only the holder of the logger and the
	// metrics the proxy reports to, and no HTTP API is started.
	server := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	p.tp = toxiproxy.NewProxy(server, name, "127.0.0.1:0", target)
	if err := p.tp.Start(); err != nil {
		if p.fwd != nil {
			p.fwd.close()
		}
		return nil, fmt.Errorf("fault: proxy %s: %w", name, err)
	}
	p.tp.Lock()
	p.addr = p.tp.Listen // the port chosen for ":0"; kept across Stop and Start
	p.tp.Unlock()
	return p, nil
}

// Name is the name NewProxy was given.
func (p *Proxy) Name() string { return p.name }

// Addr is the host:port clients connect to instead of the upstream.
func (p *Proxy) Addr() string { return p.addr }

// Upstream is the address NewProxy was given.
func (p *Proxy) Upstream() string { return p.upstream }

// Close stops the proxy, closing every connection through it. Calling it
// again does nothing; a nemesis healing a closed proxy fails.
func (p *Proxy) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	p.tp.Stop()
	if p.fwd != nil {
		p.fwd.close()
	}
	return nil
}

var errProxyClosed = errors.New("proxy closed")

// stop closes the listener and every connection through the proxy.
func (p *Proxy) stop() {
	p.tp.Stop()
}

// start listens again on the same address. Another socket may have taken
// the port while the proxy was stopped (an outgoing connection can get it as
// its local port); then it retries, for up to restartTimeout.
func (p *Proxy) start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errProxyClosed
	}
	ctx, cancel := context.WithTimeout(ctx, restartTimeout)
	defer cancel()
	for {
		err := p.tp.Start()
		if err == nil || errors.Is(err, toxiproxy.ErrProxyAlreadyStarted) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("proxy %s: listen on %s again: %w", p.name, p.addr, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

const restartTimeout = 5 * time.Second

// A toxic as toxiproxy's JSON API describes it.
type toxic struct {
	Name       string  `json:"name"`
	Type       string  `json:"type"`
	Stream     string  `json:"stream"` // "upstream": client to server; "downstream": server to client
	Toxicity   float32 `json:"toxicity"`
	Attributes any     `json:"attributes"`
}

func (p *Proxy) addToxic(t toxic) error {
	t.Toxicity = 1
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	if _, err := p.tp.Toxics.AddToxicJson(bytes.NewReader(b)); err != nil {
		return fmt.Errorf("proxy %s: add toxic %s: %w", p.name, t.Name, err)
	}
	return nil
}

// removeToxic removes a toxic; one that is not there is already removed.
func (p *Proxy) removeToxic(ctx context.Context, name string) error {
	err := p.tp.Toxics.RemoveToxic(ctx, name)
	if err != nil && !errors.Is(err, toxiproxy.ErrToxicNotFound) {
		return fmt.Errorf("proxy %s: remove toxic %s: %w", p.name, name, err)
	}
	return nil
}

// toxicNames lists the toxics in place, for tests.
func (p *Proxy) toxicNames() []string {
	var names []string
	for _, t := range p.tp.Toxics.GetToxicArray() {
		if w, ok := t.(*toxics.ToxicWrapper); ok {
			names = append(names, w.Name)
		}
	}
	return names
}

// enabled reports whether the proxy accepts connections, for tests.
func (p *Proxy) enabled() bool {
	p.tp.Lock()
	defer p.tp.Unlock()
	return p.tp.Enabled
}

// onEach runs fn on every proxy, all of them even when some fail, so that a
// half-applied fault is as much of the fault as possible and a heal heals
// all it can.
func onEach(proxies []*Proxy, fn func(*Proxy) error) error {
	var errs []error
	for _, p := range proxies {
		errs = append(errs, fn(p))
	}
	return errors.Join(errs...)
}

// Latency slows every connection through the proxies: each round trip takes
// latency longer, give or take jitter, half of it on the way to the server
// and half on the way back (toxiproxy's "latency" toxic in both
// directions). Requests so reach the server late and replies reach the
// client late, which widens the windows between a store's steps, where the
// races of a black-box store hide. toxiproxy counts whole milliseconds;
// latency and jitter are rounded up to them. Heal removes the toxics; the
// connections stay.
func Latency(proxies []*Proxy, latency, jitter time.Duration) Nemesis {
	ms := func(d time.Duration) int64 { return int64((max(d, 0) + time.Millisecond - 1) / time.Millisecond) }
	l, j := ms(latency), ms(jitter)
	type attrs struct {
		Latency int64 `json:"latency"`
		Jitter  int64 `json:"jitter"`
	}
	return &toggle{
		name: "latency",
		inject: func(context.Context) error {
			return onEach(proxies, func(p *Proxy) error {
				return errors.Join(
					p.addToxic(toxic{Name: "fault-latency-up", Type: "latency", Stream: "upstream", Attributes: attrs{l / 2, j / 2}}),
					p.addToxic(toxic{Name: "fault-latency-down", Type: "latency", Stream: "downstream", Attributes: attrs{l - l/2, j - j/2}}),
				)
			})
		},
		heal: func(ctx context.Context) error {
			return onEach(proxies, func(p *Proxy) error {
				return errors.Join(p.removeToxic(ctx, "fault-latency-up"), p.removeToxic(ctx, "fault-latency-down"))
			})
		},
	}
}

// Reset breaks connections through the proxies while injected: the first
// reply the server sends on any connection, open or new, is dropped and the
// connection closed (toxiproxy's "reset_peer" toxic on the server-to-client
// stream; connections opened while it is in place close with a TCP RST,
// older ones with a FIN). The request has reached the server by then, so a
// write may be applied while its client sees a broken connection: the
// unknown outcome a store must report as such, never as a failure. Heal
// removes the toxic; new connections work again.
func Reset(proxies []*Proxy) Nemesis {
	return &toggle{
		name: "reset",
		inject: func(context.Context) error {
			return onEach(proxies, func(p *Proxy) error {
				return p.addToxic(toxic{Name: "fault-reset", Type: "reset_peer", Stream: "downstream", Attributes: struct {
					Timeout int64 `json:"timeout"`
				}{0}})
			})
		},
		heal: func(ctx context.Context) error {
			return onEach(proxies, func(p *Proxy) error { return p.removeToxic(ctx, "fault-reset") })
		},
	}
}

// Partition cuts the stores off from the servers behind the proxies: Inject
// stops each proxy, which closes every connection through it and its
// listener, so new connections are refused and commands fail at once. Heal
// listens again on the same port. For a partition that makes commands hang
// until the client's timeout instead, see Blackhole.
func Partition(proxies []*Proxy) Nemesis {
	return &toggle{
		name: "partition",
		inject: func(context.Context) error {
			return onEach(proxies, func(p *Proxy) error {
				p.mu.Lock()
				defer p.mu.Unlock()
				if p.closed {
					return errProxyClosed
				}
				p.stop()
				return nil
			})
		},
		heal: func(ctx context.Context) error {
			return onEach(proxies, func(p *Proxy) error { return p.start(ctx) })
		},
	}
}

// Blackhole is the partition of a network that drops packets: connections
// through the proxies, open or new, stay up but carry nothing in either
// direction (toxiproxy's "timeout" toxic with no timeout), so every command
// hangs until the client's own timeout. Requests vanish before they reach
// the server. Heal removes the toxics, which closes the connections that
// were blackholed; new ones work.
func Blackhole(proxies []*Proxy) Nemesis {
	attrs := struct {
		Timeout int64 `json:"timeout"`
	}{0}
	return &toggle{
		name: "blackhole",
		inject: func(context.Context) error {
			return onEach(proxies, func(p *Proxy) error {
				return errors.Join(
					p.addToxic(toxic{Name: "fault-blackhole-up", Type: "timeout", Stream: "upstream", Attributes: attrs}),
					p.addToxic(toxic{Name: "fault-blackhole-down", Type: "timeout", Stream: "downstream", Attributes: attrs}),
				)
			})
		},
		heal: func(ctx context.Context) error {
			return onEach(proxies, func(p *Proxy) error {
				return errors.Join(p.removeToxic(ctx, "fault-blackhole-up"), p.removeToxic(ctx, "fault-blackhole-down"))
			})
		},
	}
}

// forwarder accepts TCP connections on 127.0.0.1 and pipes each to a new
// connection to a unix socket, byte for byte, closing both sides when
// either ends.
type forwarder struct {
	ln              net.Listener
	network, target string

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

func startForwarder(network, target string) (*forwarder, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &forwarder{ln: ln, network: network, target: target, conns: make(map[net.Conn]struct{})}
	f.wg.Add(1)
	go f.accept()
	return f, nil
}

func (f *forwarder) addr() string { return f.ln.Addr().String() }

func (f *forwarder) accept() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return // closed
		}
		up, err := net.DialTimeout(f.network, f.target, 5*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		if !f.track(c, up) {
			c.Close()
			up.Close()
			return
		}
		f.wg.Add(2)
		go f.pipe(up, c)
		go f.pipe(c, up)
	}
}

func (f *forwarder) track(cs ...net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	for _, c := range cs {
		f.conns[c] = struct{}{}
	}
	return true
}

func (f *forwarder) pipe(dst, src net.Conn) {
	defer f.wg.Done()
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
	f.mu.Lock()
	delete(f.conns, dst)
	delete(f.conns, src)
	f.mu.Unlock()
}

// close stops accepting, closes every connection and waits for the
// goroutines to end.
func (f *forwarder) close() {
	f.mu.Lock()
	f.closed = true
	f.ln.Close()
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// PostgresUpstream is the NewProxy upstream of the server a PostgreSQL DSN
// (URL or key=value) names: host:port for TCP, or "unix:" and the socket's
// path when the host is a directory, as with memtest's private cluster.
func PostgresUpstream(dsn string) (string, error) {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return "", fmt.Errorf("fault: %w", err)
	}
	port := strconv.Itoa(int(cfg.Port))
	if strings.HasPrefix(cfg.Host, "/") {
		return "unix:" + filepath.Join(cfg.Host, ".s.PGSQL."+port), nil
	}
	return net.JoinHostPort(cfg.Host, port), nil
}

// PostgresDSNVia returns dsn changed to connect over TCP to addr (a
// Proxy's Addr) instead of its own host and port; the database, user and
// other parameters stay.
func PostgresDSNVia(dsn, addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("fault: %w", err)
	}
	var out string
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("fault: %w", err)
		}
		q := u.Query()
		q.Del("host") // a host or port parameter overrides the URL's
		q.Del("port")
		q.Del("hostaddr")
		u.RawQuery = q.Encode()
		u.Host = addr
		out = u.String()
	} else {
		// In key=value form the last of a repeated key wins.
		out = dsn + " host=" + host + " port=" + port
	}
	cfg, err := pgconn.ParseConfig(out)
	if err != nil {
		return "", fmt.Errorf("fault: %w", err)
	}
	// Fallbacks are other hosts to try, or the same one without TLS
	// (sslmode=prefer): every one must be the proxy.
	targets := []*pgconn.FallbackConfig{{Host: cfg.Host, Port: cfg.Port}}
	for _, fb := range append(targets, cfg.Fallbacks...) {
		if fb.Host != host || strconv.Itoa(int(fb.Port)) != port {
			return "", fmt.Errorf("fault: cannot point DSN at %s: it still names %s:%d", addr, fb.Host, fb.Port)
		}
	}
	return out, nil
}
