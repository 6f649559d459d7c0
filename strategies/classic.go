package strategies

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/memstore/memstore"
)

// WriteDBDeleteCache is plain cache-aside: reads fill on a miss, writes
// update the DB and then delete the cache entry.
//
// It breaks when a reader that missed reads the old row before the write
// commits and puts it back after the write deleted the entry:
//
//	reader: GET (miss), SELECT (old)
//	writer:                          UPDATE, DEL        -> returns
//	reader:                                       SET old
//	later readers: GET -> old, until the TTL ends
func WriteDBDeleteCache() Factory {
	return Factory{
		Name: "write-db-delete-cache",
		Doc:  "cache-aside; writes update the DB, then delete the cache entry. A reader that read the old row before the write puts it back after the delete.",
		New: func(ctx context.Context, c Config) (Store, error) {
			p, err := newPlain(ctx, c)
			return &writeDBDelete{p}, err
		},
	}
}

type writeDBDelete struct{ *plain }

func (s *writeDBDelete) Get(ctx context.Context, key string) (string, error) {
	return s.cacheAside(ctx, key)
}

func (s *writeDBDelete) Set(ctx context.Context, key, v string) error {
	if err := s.dbWrite(ctx, key, v, false); err != nil {
		return err
	}
	return s.cacheDel(ctx, key)
}

func (s *writeDBDelete) Delete(ctx context.Context, key string) error {
	if err := s.dbWrite(ctx, key, "", true); err != nil {
		return err
	}
	return s.cacheDel(ctx, key)
}

// DeleteCacheWriteDB deletes the cache entry first, then updates the DB.
//
// It breaks when a reader misses between the delete and the commit:
//
//	writer: DEL                       UPDATE -> returns
//	reader:      GET (miss), SELECT (old), SET old
//	later readers: GET -> old, until the TTL ends
func DeleteCacheWriteDB() Factory {
	return Factory{
		Name: "delete-cache-write-db",
		Doc:  "writes delete the cache entry, then update the DB. A reader that misses in between caches the old row for the whole TTL.",
		New: func(ctx context.Context, c Config) (Store, error) {
			p, err := newPlain(ctx, c)
			return &deleteWriteDB{p}, err
		},
	}
}

type deleteWriteDB struct{ *plain }

func (s *deleteWriteDB) Get(ctx context.Context, key string) (string, error) {
	return s.cacheAside(ctx, key)
}

func (s *deleteWriteDB) Set(ctx context.Context, key, v string) error {
	if err := s.cacheDel(ctx, key); err != nil {
		return err
	}
	return s.dbWrite(ctx, key, v, false)
}

func (s *deleteWriteDB) Delete(ctx context.Context, key string) error {
	if err := s.cacheDel(ctx, key); err != nil {
		return err
	}
	return s.dbWrite(ctx, key, "", true)
}

// WriteDBSetCache writes the DB, then overwrites the cache with the new
// value (write-through).
//
// It breaks when two writers' cache sets arrive in the opposite order of
// their commits, and when a reader's fill of an old row lands after a write
// set the new value:
//
//	writer A: UPDATE a                       SET a -> returns
//	writer B:          UPDATE b, SET b -> returns
//	every reader: GET -> a, though the DB holds b, until eviction or TTL
//
// All readers agree on the wrong value, so only a read that reaches the DB
// (after an eviction) exposes it: the verifier evicts keys during the run.
func WriteDBSetCache() Factory {
	return Factory{
		Name: "write-db-set-cache",
		Doc:  "writes update the DB, then SET the new value in the cache. Two writers' SETs can land in the opposite order of their commits, leaving the older value cached.",
		New: func(ctx context.Context, c Config) (Store, error) {
			p, err := newPlain(ctx, c)
			return &writeDBSet{p}, err
		},
	}
}

type writeDBSet struct{ *plain }

func (s *writeDBSet) Get(ctx context.Context, key string) (string, error) {
	return s.cacheAside(ctx, key)
}

func (s *writeDBSet) Set(ctx context.Context, key, v string) error {
	if err := s.dbWrite(ctx, key, v, false); err != nil {
		return err
	}
	return s.cacheSet(ctx, key, v)
}

func (s *writeDBSet) Delete(ctx context.Context, key string) error {
	if err := s.dbWrite(ctx, key, "", true); err != nil {
		return err
	}
	return s.cacheDel(ctx, key)
}

// DoubleDeleteDelay is how long DoubleDelete waits before its second delete.
const DoubleDeleteDelay = 50 * time.Millisecond

// DoubleDelete deletes the cache entry, writes the DB, and deletes the entry
// again after a delay, in the background (the "delayed double delete").
//
// It breaks in two ways. Until the second delete, a fill of the old row that
// raced the write is served although the write has returned:
//
//	writer: DEL, UPDATE -> returns                     (DEL after 50ms)
//	reader:   GET (miss), SELECT (old)   SET old
//	reader2:                                  GET -> old   (stale)
//
// And a reader slower than the delay puts the old row back for good.
func DoubleDelete() Factory {
	return Factory{
		Name: "double-delete",
		Doc:  "writes delete the cache entry, update the DB, and delete again 50ms later in the background. Reads inside the delay, and fills slower than it, serve the old row.",
		New: func(ctx context.Context, c Config) (Store, error) {
			p, err := newPlain(ctx, c)
			return &doubleDelete{plain: p, done: make(chan struct{})}, err
		},
	}
}

type doubleDelete struct {
	*plain
	done chan struct{}
}

func (s *doubleDelete) Get(ctx context.Context, key string) (string, error) {
	return s.cacheAside(ctx, key)
}

func (s *doubleDelete) Set(ctx context.Context, key, v string) error {
	return s.write(ctx, key, v, false)
}

func (s *doubleDelete) Delete(ctx context.Context, key string) error {
	return s.write(ctx, key, "", true)
}

func (s *doubleDelete) write(ctx context.Context, key, v string, del bool) error {
	if err := s.cacheDel(ctx, key); err != nil {
		return err
	}
	if err := s.dbWrite(ctx, key, v, del); err != nil {
		return err
	}
	go func() {
		t := time.NewTimer(DoubleDeleteDelay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-s.done:
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = s.cacheDel(ctx, key)
	}()
	return nil
}

func (s *doubleDelete) Close() error {
	select {
	case <-s.done:
	default:
		close(s.done)
	}
	return nil
}

// LeaseNoIntent guards fills with a lease (a random token per fill, taken
// with SET NX), so two fills never race each other, but records no write
// intent: a write updates the DB and deletes the value, not the lease.
//
// It breaks because the lease guards fills against each other, not against
// writes:
//
//	reader: GET (miss), SET lease NX, SELECT (old)                 fill old (lease still ours)
//	writer:                                       UPDATE, DEL -> returns
//	later readers: GET -> old
func LeaseNoIntent() Factory {
	return Factory{
		Name: "lease-no-intent",
		Doc:  "fills take a per-fill lease, so fills never race each other; writes update the DB and delete the value but record no intent, so a fill that read the old row still holds its lease and lands after the write.",
		New: func(ctx context.Context, c Config) (Store, error) {
			p, err := newPlain(ctx, c)
			return &leaseNoIntent{p}, err
		},
	}
}

type leaseNoIntent struct{ *plain }

// leaseFill installs ARGV[2] at KEYS[1] only while KEYS[2] holds token ARGV[1].
var leaseFill = redis.NewScript(`
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
`)

func (s *leaseNoIntent) Get(ctx context.Context, key string) (string, error) {
	lease := s.key(key) + ":lease"
	for wait := time.Millisecond; ; wait = min(wait*2, 10*time.Millisecond) {
		if v, ok, err := s.cacheGet(ctx, key); err != nil || ok {
			return v, err
		}
		token := randomToken()
		var got bool
		err := s.step(ctx, memstore.StepRedisGet, key, func() (err error) {
			got, err = s.c.Redis.SetNX(ctx, lease, token, 2*time.Second).Result()
			return err
		})
		if err != nil {
			return "", err
		}
		if !got { // another reader is filling: wait for it
			select {
			case <-time.After(wait):
				continue
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}
		v, err := s.dbGet(ctx, key)
		if err != nil {
			s.c.Redis.Del(ctx, lease)
			return "", err
		}
		_ = s.step(ctx, memstore.StepRedisFill, key, func() error {
			return leaseFill.Run(ctx, s.c.Redis, []string{s.key(key), lease}, token, v, s.c.TTL.Milliseconds()).Err()
		})
		return v, nil
	}
}

func (s *leaseNoIntent) Set(ctx context.Context, key, v string) error {
	if err := s.dbWrite(ctx, key, v, false); err != nil {
		return err
	}
	return s.cacheDel(ctx, key)
}

func (s *leaseNoIntent) Delete(ctx context.Context, key string) error {
	if err := s.dbWrite(ctx, key, "", true); err != nil {
		return err
	}
	return s.cacheDel(ctx, key)
}

// DBOnly is the control store: no cache at all, every call goes to the DB.
// The verifier must find it linearizable under every fault; a failure here
// is a false alarm of the verifier, not a store bug.
func DBOnly() Factory {
	return Factory{
		Name:       "db-only",
		ExpectPass: true,
		Doc:        "no cache: every read and write goes to the DB. The verifier's control for false alarms.",
		New: func(ctx context.Context, c Config) (Store, error) {
			p, err := newPlain(ctx, c)
			return &dbOnly{p}, err
		},
	}
}

type dbOnly struct{ *plain }

func (s *dbOnly) Get(ctx context.Context, key string) (string, error) { return s.dbGet(ctx, key) }
func (s *dbOnly) Set(ctx context.Context, key, v string) error        { return s.dbWrite(ctx, key, v, false) }
func (s *dbOnly) Delete(ctx context.Context, key string) error        { return s.dbWrite(ctx, key, "", true) }

var (
	_ Store = (*writeDBDelete)(nil)
	_ Store = (*deleteWriteDB)(nil)
	_ Store = (*writeDBSet)(nil)
	_ Store = (*doubleDelete)(nil)
	_ Store = (*leaseNoIntent)(nil)
	_ Store = (*dbOnly)(nil)
)
