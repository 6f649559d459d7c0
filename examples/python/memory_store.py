"""A "memory store" the way the classic cache-aside tutorials write it.

Redis holds hot values, SQLite holds all of them. Reads try Redis first; on a
miss they read the database and put the value in Redis. Writes update the
database, then delete the cached copy so the next read reloads it.

It looks right, and it passes every single-threaded test. It is not: a reader
that missed can read the old row, lose the CPU, and put the old value back in
Redis *after* a writer deleted it. Every later read is then served the old
value until the TTL ends. `memstore check --exec` catches it (see
test_memstore_check.py).

DBOnlyStore is its twin without a cache: slower, and correct.
"""

import sqlite3

import redis

SCHEMA = """CREATE TABLE IF NOT EXISTS memories (
    ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (ns, key))"""


class DBOnlyStore:
    """Every read and write goes to the database."""

    def __init__(self, db_path, namespace):
        # timeout: how long to wait for SQLite's write lock.
        self.db = sqlite3.connect(db_path, timeout=2)
        self.db.execute(SCHEMA)
        self.db.commit()
        self.ns = namespace

    def db_get(self, key):
        row = self.db.execute(
            "SELECT value FROM memories WHERE ns = ? AND key = ?", (self.ns, key)
        ).fetchone()
        return None if row is None else row[0]

    def get(self, key):
        return self.db_get(key)

    def write(self, sql, args):
        try:
            self.db.execute(sql, args)
            self.db.commit()
        except Exception:
            self.db.rollback()  # never leave a half-done transaction open
            raise

    def set(self, key, value):
        self.write(
            "INSERT INTO memories (ns, key, value) VALUES (?, ?, ?) "
            "ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value",
            (self.ns, key, value),
        )

    def delete(self, key):
        self.write("DELETE FROM memories WHERE ns = ? AND key = ?", (self.ns, key))


class MemoryStore(DBOnlyStore):
    """Cache-aside over Redis: write the DB, then delete the cache."""

    def __init__(self, redis_url, db_path, namespace, ttl=3600):
        super().__init__(db_path, namespace)
        self.redis = redis.Redis.from_url(
            redis_url, decode_responses=True, socket_timeout=1, socket_connect_timeout=1
        )
        self.ttl = ttl

    def cache_key(self, key):
        return f"{self.ns}:{key}"

    def get(self, key):
        cached = self.redis.get(self.cache_key(key))
        if cached is not None:
            return cached
        value = self.db_get(key)
        if value is not None:
            self.redis.set(self.cache_key(key), value, ex=self.ttl)
        return value

    def set(self, key, value):
        super().set(key, value)
        self.redis.delete(self.cache_key(key))

    def delete(self, key):
        super().delete(key)
        self.redis.delete(self.cache_key(key))
