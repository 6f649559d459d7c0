package strategies

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/memstore/memstore"
	"github.com/memstore/memstore/internal/rediscache"
	"github.com/memstore/memstore/internal/sqlstore"
)

// StepRedisSet is the strategies' plain cache set, a step memstore does
// not have (it fills only under a lease, StepRedisFill).
const StepRedisSet memstore.Step = "redis.set"

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }

func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

func rebind(db *sql.DB, q string) string { return sqlstore.Rebind(sqlstore.Detect(db), q) }

// plain is the common ground of the classic strategies: values as plain
// Redis strings at "<ns>:{<key>}", rows in a plain table, a hook at every
// step. The strategies differ only in the order of their steps.
type plain struct {
	c                Config
	qGet, qPut, qDel string
}

func newPlain(ctx context.Context, c Config) (*plain, error) {
	c = c.withDefaults()
	if err := rediscache.CheckNamespace(c.Namespace); err != nil {
		return nil, fmt.Errorf("strategies: Config.Namespace %q: %w", c.Namespace, err)
	}
	p := &plain{
		c:    c,
		qGet: rebind(c.DB, `SELECT value FROM strategy_entries WHERE ns = ? AND key = ?`),
		qPut: rebind(c.DB, `INSERT INTO strategy_entries (ns, key, value) VALUES (?, ?, ?)
ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value`),
		qDel: rebind(c.DB, `DELETE FROM strategy_entries WHERE ns = ? AND key = ?`),
	}
	if c.Migrate {
		if _, err := c.DB.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS strategy_entries (
  ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (ns, key))`); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// key is memstore's layout (internal/rediscache): the same rule keeps
// every (namespace, key) pair on a Redis key of its own, and each key in
// one slot with its lease.
func (p *plain) key(k string) string { return rediscache.KeyOf(p.c.Namespace, k) }

// step runs f between the hooks of st, as memstore does.
func (p *plain) step(ctx context.Context, st memstore.Step, key string, f func() error) error {
	if p.c.Hook == nil {
		return f()
	}
	if err := p.c.Hook(ctx, memstore.HookEvent{Step: st, Phase: memstore.Before, Key: key}); err != nil {
		return err
	}
	err := f()
	if herr := p.c.Hook(ctx, memstore.HookEvent{Step: st, Phase: memstore.After, Key: key, Err: err}); herr != nil {
		return herr
	}
	return err
}

// cacheGet returns the cached value, found=false on a miss.
func (p *plain) cacheGet(ctx context.Context, key string) (v string, found bool, err error) {
	err = p.step(ctx, memstore.StepRedisGet, key, func() error {
		v, err = p.c.Redis.Get(ctx, p.key(key)).Result()
		return err
	})
	if errors.Is(err, redis.Nil) {
		return "", false, nil
	}
	return v, err == nil, err
}

func (p *plain) cacheSet(ctx context.Context, key, v string) error {
	return p.step(ctx, StepRedisSet, key, func() error {
		return p.c.Redis.Set(ctx, p.key(key), v, p.c.TTL).Err()
	})
}

func (p *plain) cacheDel(ctx context.Context, key string) error {
	return p.step(ctx, memstore.StepRedisDel, key, func() error {
		return p.c.Redis.Del(ctx, p.key(key)).Err()
	})
}

// dbGet reads the row; a missing row is memstore.ErrNotFound.
func (p *plain) dbGet(ctx context.Context, key string) (v string, err error) {
	err = p.step(ctx, memstore.StepDBLoad, key, func() error {
		return p.c.DB.QueryRowContext(ctx, p.qGet, p.c.Namespace, key).Scan(&v)
	})
	if isNoRows(err) {
		return "", memstore.ErrNotFound
	}
	return v, err
}

// dbWrite upserts the row, or deletes it when del is set.
func (p *plain) dbWrite(ctx context.Context, key, v string, del bool) error {
	return p.step(ctx, memstore.StepDBWrite, key, func() error {
		var err error
		if del {
			_, err = p.c.DB.ExecContext(ctx, p.qDel, p.c.Namespace, key)
		} else {
			_, err = p.c.DB.ExecContext(ctx, p.qPut, p.c.Namespace, key, v)
		}
		return err
	})
}

// cacheAside is the read path most strategies share: a hit, or a DB read
// whose value is put in the cache unconditionally.
func (p *plain) cacheAside(ctx context.Context, key string) (string, error) {
	if v, ok, err := p.cacheGet(ctx, key); err != nil || ok {
		return v, err
	}
	v, err := p.dbGet(ctx, key)
	if err != nil {
		return "", err
	}
	_ = p.cacheSet(ctx, key, v) // a failed fill only costs a later miss
	return v, nil
}

func (p *plain) Evict(ctx context.Context, key string) error {
	return p.c.Redis.Del(ctx, p.key(key)).Err()
}

func (p *plain) Close() error { return nil }

func (p *plain) Inspect(ctx context.Context, key string) (Snapshot, error) {
	var s Snapshot
	v, err := p.c.Redis.Get(ctx, p.key(key)).Result()
	switch {
	case err == nil:
		s.Cached, s.CacheFound, s.CacheValue, s.CacheDetail = true, true, v, "plain string"
	case !errors.Is(err, redis.Nil):
		return s, err
	}
	err = p.c.DB.QueryRowContext(ctx, p.qGet, p.c.Namespace, key).Scan(&s.DBValue)
	switch {
	case err == nil:
		s.DBFound = true
	case !isNoRows(err):
		return s, err
	}
	return s, nil
}

func randomToken() string {
	return strconv.FormatUint(rand.Uint64(), 36) + "." + strconv.FormatUint(rand.Uint64(), 36)
}
