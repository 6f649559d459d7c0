package monitor

import (
	"bytes"
	"context"
	"database/sql"
	"errors"

	"github.com/redis/go-redis/v9"

	"github.com/memstore/memstore/internal/inspect"
)

// Entry is one key's state in one tier, as a reader would see it.
type Entry struct {
	// Cached (cache side only) says a reader would be served from this
	// entry: a value or a cached not-found. An absent, expired or corrupt
	// entry, or a bare lease, is not cached: readers go to the database.
	Cached bool
	// Found says the key has a value; false is a cached not-found, a
	// missing row or a tombstone.
	Found   bool
	Version uint64 // 0 when the layout keeps no versions
	Value   []byte
}

// Layout is how the monitor reads one cache-aside layout: which Redis keys
// are cache entries, and how to read one key's entry and its row. Each
// read is one Redis command or one SQL query, which the monitor paces.
// Memstore is memstore's layout; Plain covers the common others.
type Layout interface {
	// Pattern is the SCAN MATCH pattern of the cache entries.
	Pattern() string
	// Key returns the logical key of a Redis key SCAN returned, false for
	// a key that is not a cache entry.
	Key(redisKey string) (string, bool)
	// Cache reads key's cache entry: one Redis command.
	Cache(ctx context.Context, key string) (Entry, error)
	// Row reads key's row: one SQL query.
	Row(ctx context.Context, key string) (Entry, error)
	// Versioned says entries and rows carry versions; then a cached
	// version older than the row's is stale whatever the bytes.
	Versioned() bool
}

// InFlight is implemented by layouts that record writes in flight (a
// memstore write intent). The monitor asks it about each disagreement, one
// Redis command, to report whether a write was under way.
type InFlight interface {
	WriteInFlight(ctx context.Context, key string) (bool, error)
}

// Memstore is the layout of a memstore namespace, read through
// internal/inspect, the module's one reader of memstore's raw layout.
func Memstore(rdb redis.UniversalClient, db *sql.DB, namespace string) Layout {
	return memstoreLayout{rdb: rdb, db: db, ns: namespace}
}

type memstoreLayout struct {
	rdb redis.UniversalClient
	db  *sql.DB
	ns  string
}

func (l memstoreLayout) Pattern() string              { return inspect.Pattern(l.ns) }
func (l memstoreLayout) Key(rk string) (string, bool) { return inspect.KeyOfEntry(l.ns, rk) }
func (l memstoreLayout) Versioned() bool              { return true }
func (l memstoreLayout) String() string               { return "memstore namespace " + l.ns }
func (l memstoreLayout) WriteInFlight(ctx context.Context, key string) (bool, error) {
	return inspect.Intent(ctx, l.rdb, l.ns, key)
}

func (l memstoreLayout) Cache(ctx context.Context, key string) (Entry, error) {
	c, err := inspect.ReadCache(ctx, l.rdb, l.ns, key)
	if err != nil || !c.Cached {
		return Entry{}, err
	}
	return Entry{Cached: true, Found: !c.NotFound, Version: c.Version, Value: c.Payload}, nil
}

func (l memstoreLayout) Row(ctx context.Context, key string) (Entry, error) {
	r, err := inspect.ReadRow(ctx, l.db, l.ns, key)
	if err != nil {
		return Entry{}, err
	}
	return Entry{Found: r.Found && !r.Tombstone, Version: r.Version, Value: r.Value}, nil
}

// Plain is a cache-aside layout described by its parts: a Redis key
// pattern, a SQL query by key and a decode function. Values are Redis
// strings (or one field of a hash); a key that is absent from Redis is not
// cached, and a query that returns no row means the key does not exist.
type Plain struct {
	Redis redis.UniversalClient
	DB    *sql.DB
	// Match is the SCAN MATCH pattern of the cache entries, e.g. "app:*".
	Match string
	// KeyOf returns the logical key of a Redis key SCAN returned (false:
	// not an entry); RedisKey is its inverse.
	KeyOf    func(redisKey string) (string, bool)
	RedisKey func(key string) string
	// Field, if set, is the hash field holding the value (HGET); else the
	// entry is a string (GET).
	Field string
	// Query selects one key's row: its value, then, if the layout is
	// Versioned, its version. Args gives its arguments (default: the key).
	Query string
	Args  func(key string) []any
	// Decode turns a cached value into an Entry (Found, Version, Value);
	// nil means the value is the bytes as stored, found, unversioned.
	Decode func(raw []byte) (Entry, error)
	// Versions says Query and Decode give versions.
	Versions bool
}

func (p *Plain) Pattern() string              { return p.Match }
func (p *Plain) Key(rk string) (string, bool) { return p.KeyOf(rk) }
func (p *Plain) Versioned() bool              { return p.Versions }

func (p *Plain) Cache(ctx context.Context, key string) (Entry, error) {
	var raw []byte
	var err error
	if p.Field != "" {
		raw, err = p.Redis.HGet(ctx, p.RedisKey(key), p.Field).Bytes()
	} else {
		raw, err = p.Redis.Get(ctx, p.RedisKey(key)).Bytes()
	}
	switch {
	case errors.Is(err, redis.Nil):
		return Entry{}, nil
	case err != nil:
		return Entry{}, err
	case p.Decode == nil:
		return Entry{Cached: true, Found: true, Value: raw}, nil
	}
	e, err := p.Decode(raw)
	if err != nil {
		return Entry{}, err
	}
	e.Cached = true
	return e, nil
}

func (p *Plain) Row(ctx context.Context, key string) (Entry, error) {
	args := []any{key}
	if p.Args != nil {
		args = p.Args(key)
	}
	e := Entry{Found: true}
	dest := []any{&e.Value}
	if p.Versions {
		dest = append(dest, &e.Version)
	}
	err := p.DB.QueryRowContext(ctx, p.Query, args...).Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return Entry{}, nil
	}
	return e, err
}

// agree reports whether a reader served c would get what row holds.
func agree(versioned bool, c, row Entry) bool {
	if c.Found != row.Found {
		return false
	}
	if versioned && c.Version != row.Version {
		return false
	}
	return !c.Found || bytes.Equal(c.Value, row.Value)
}

var (
	_ Layout   = memstoreLayout{}
	_ InFlight = memstoreLayout{}
	_ Layout   = (*Plain)(nil)
)
