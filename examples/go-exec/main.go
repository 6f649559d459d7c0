// Command go-exec is an adapter of `memstore check --exec` for a Go store
// that lives in another process: a service's own cache-aside store, checked
// without linking it into the checker. It speaks the exec protocol
// (docs/exec-protocol.md) with the "concurrent" feature: requests overlap,
// as they do in a server, and each is answered when it is done.
//
//	go build -o /tmp/go-exec ./examples/go-exec
//	memstore check --exec "/tmp/go-exec -store naive"    # caught: exit 1
//	memstore check --exec "/tmp/go-exec -store db-only"  # passes: exit 0
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

func main() {
	storeName := flag.String("store", "naive", "naive (cache-aside: write the DB, then delete the cache) or db-only")
	flag.Parse()
	if err := serve(context.Background(), *storeName, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "go-exec:", err)
		os.Exit(1)
	}
}

type request struct {
	ID    int64  `json:"id"`
	Op    string `json:"op"`
	Key   string `json:"key"`
	Value string `json:"value"`
}

// reply holds every field a reply may carry; omitempty keeps each reply to
// the fields of its op (found is sent for get, even when false).
type reply struct {
	ID         int64    `json:"id"`
	OK         bool     `json:"ok"`
	Protocol   int      `json:"protocol,omitempty"`
	Features   []string `json:"features,omitempty"`
	Found      *bool    `json:"found,omitempty"`
	Value      string   `json:"value,omitempty"`
	Cached     *bool    `json:"cached,omitempty"`
	CacheFound bool     `json:"cache_found,omitempty"`
	CacheValue string   `json:"cache_value,omitempty"`
	DBFound    bool     `json:"db_found,omitempty"`
	DBValue    string   `json:"db_value,omitempty"`
	Error      string   `json:"error,omitempty"`
	Outcome    string   `json:"outcome,omitempty"`
}

// serve answers requests from in until it ends, each on a goroutine of its
// own, and waits for those in flight.
func serve(ctx context.Context, storeName string, in io.Reader, out io.Writer) error {
	st, err := open(ctx, storeName, os.Getenv("MEMSTORE_REDIS_URL"), os.Getenv("MEMSTORE_DB_URL"), os.Getenv("MEMSTORE_NAMESPACE"))
	if err != nil {
		return err
	}
	defer st.Close()
	var mu sync.Mutex
	enc := json.NewEncoder(out)
	send := func(r reply) {
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(r)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	sc := bufio.NewScanner(in)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var req request
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			return fmt.Errorf("bad request %q: %w", sc.Text(), err)
		}
		if req.Op == "init" {
			send(reply{ID: 0, OK: true, Protocol: 1, Features: []string{"evict", "inspect", "concurrent"}})
			continue
		}
		wg.Go(func() {
			// Bound every call well within the checker's op timeout.
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			r := handle(cctx, st, req)
			r.ID = req.ID
			send(r)
		})
	}
	return sc.Err()
}

func handle(ctx context.Context, st *store, req request) reply {
	var err error
	r := reply{OK: true}
	switch req.Op {
	case "get":
		var found bool
		r.Value, found, err = st.Get(ctx, req.Key)
		r.Found = &found
	case "set":
		err = st.Set(ctx, req.Key, req.Value)
	case "delete":
		err = st.Delete(ctx, req.Key)
	case "evict":
		err = st.Evict(ctx, req.Key)
	case "inspect":
		var s snapshot
		s, err = st.Inspect(ctx, req.Key)
		r.Cached, r.CacheFound, r.CacheValue, r.DBFound, r.DBValue = &s.cached, s.cached, s.cacheValue, s.dbFound, s.dbValue
	default:
		return reply{OK: false, Error: "unknown op " + req.Op, Outcome: "failed"}
	}
	if err != nil {
		// The write may have been applied: say unknown, never failed,
		// unless certain.
		return reply{OK: false, Error: err.Error(), Outcome: "unknown"}
	}
	return r
}
