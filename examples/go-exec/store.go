package main

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/redis/go-redis/v9"
	_ "modernc.org/sqlite"
)

// store is a service's memory store: values in Redis and in a SQL table.
// With cache set it is plain cache-aside, as most services write it: a
// read that misses loads the row and caches it; a write updates the row,
// then deletes the cached copy. A reader that loaded the old row before a
// write can cache it after the write's delete, and every reader is then
// served the old value until the TTL ends. Without cache it reads and
// writes the table only, which is correct.
type store struct {
	rdb   *redis.Client // nil: no cache
	db    *sql.DB
	ns    string
	ph    func(int) string // placeholder n (1-based) of the DB's dialect
	cache bool
}

func open(ctx context.Context, name, redisURL, dbURL, ns string) (*store, error) {
	s := &store{ns: ns, cache: name == "naive", ph: func(int) string { return "?" }}
	if name != "naive" && name != "db-only" {
		return nil, errors.New("unknown store " + name)
	}
	var err error
	if strings.HasPrefix(dbURL, "postgres") {
		s.db, err = sql.Open("pgx", dbURL)
		s.ph = func(n int) string { return "$" + string(rune('0'+n)) }
	} else {
		s.db, err = sql.Open("sqlite", "file:"+dbURL+"?_pragma=busy_timeout(2000)")
		s.db.SetMaxOpenConns(1)
	}
	if err != nil {
		return nil, err
	}
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS goexec_kv (ns TEXT NOT NULL, k TEXT NOT NULL, v TEXT NOT NULL, PRIMARY KEY (ns, k))`); err != nil {
		return nil, err
	}
	if s.cache {
		o, err := redis.ParseURL(redisURL)
		if err != nil {
			return nil, err
		}
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout = 500*time.Millisecond, 500*time.Millisecond, 500*time.Millisecond
		s.rdb = redis.NewClient(o)
	}
	return s, nil
}

func (s *store) Close() error {
	if s.rdb != nil {
		s.rdb.Close()
	}
	return s.db.Close()
}

func (s *store) cacheKey(k string) string { return s.ns + ":" + k }

func (s *store) load(ctx context.Context, k string) (string, bool, error) {
	var v string
	err := s.db.QueryRowContext(ctx, "SELECT v FROM goexec_kv WHERE ns = "+s.ph(1)+" AND k = "+s.ph(2), s.ns, k).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	return v, err == nil, err
}

func (s *store) Get(ctx context.Context, k string) (string, bool, error) {
	if s.cache {
		v, err := s.rdb.Get(ctx, s.cacheKey(k)).Result()
		if err == nil {
			return v, true, nil
		}
		if !errors.Is(err, redis.Nil) {
			return "", false, err
		}
	}
	v, found, err := s.load(ctx, k)
	if err != nil || !found || !s.cache {
		return v, found, err
	}
	s.rdb.Set(ctx, s.cacheKey(k), v, time.Hour) // a failed fill only costs a miss
	return v, true, nil
}

func (s *store) Set(ctx context.Context, k, v string) error {
	_, err := s.db.ExecContext(ctx, "INSERT INTO goexec_kv (ns, k, v) VALUES ("+s.ph(1)+", "+s.ph(2)+", "+s.ph(3)+") ON CONFLICT (ns, k) DO UPDATE SET v = excluded.v", s.ns, k, v)
	if err != nil || !s.cache {
		return err
	}
	return s.rdb.Del(ctx, s.cacheKey(k)).Err()
}

func (s *store) Delete(ctx context.Context, k string) error {
	_, err := s.db.ExecContext(ctx, "DELETE FROM goexec_kv WHERE ns = "+s.ph(1)+" AND k = "+s.ph(2), s.ns, k)
	if err != nil || !s.cache {
		return err
	}
	return s.rdb.Del(ctx, s.cacheKey(k)).Err()
}

func (s *store) Evict(ctx context.Context, k string) error {
	if !s.cache {
		return nil
	}
	return s.rdb.Del(ctx, s.cacheKey(k)).Err()
}

type snapshot struct {
	cached, dbFound     bool
	cacheValue, dbValue string
}

func (s *store) Inspect(ctx context.Context, k string) (snapshot, error) {
	var snap snapshot
	if s.cache {
		v, err := s.rdb.Get(ctx, s.cacheKey(k)).Result()
		switch {
		case err == nil:
			snap.cached, snap.cacheValue = true, v
		case !errors.Is(err, redis.Nil):
			return snap, err
		}
	}
	var err error
	snap.dbValue, snap.dbFound, err = s.load(ctx, k)
	return snap, err
}
