"""memstore check --exec adapter for memory_store.py (exec protocol 1).

    memstore check --exec "/usr/bin/python3 adapter.py naive"
    memstore check --exec "/usr/bin/python3 adapter.py db-only"

One request per line on stdin, one answer per line on stdout; the checker
sends the next request only after the answer (no "concurrent" feature).
"""

import json
import os
import sys

from memory_store import DBOnlyStore, MemoryStore

env = os.environ
if env["MEMSTORE_DB_URL"].startswith("postgres"):
    sys.exit("adapter.py: this example speaks SQLite only")
if sys.argv[1:] == ["db-only"]:
    store, features = DBOnlyStore(env["MEMSTORE_DB_URL"], env["MEMSTORE_NAMESPACE"]), ["inspect"]
else:
    store = MemoryStore(env["MEMSTORE_REDIS_URL"], env["MEMSTORE_DB_URL"], env["MEMSTORE_NAMESPACE"])
    features = ["evict", "inspect"]


def handle(req):
    op, key = req["op"], req.get("key")
    if op == "init":
        return {"ok": True, "protocol": 1, "features": features}
    if op == "get":
        value = store.get(key)
        return {"ok": True, "found": value is not None, "value": value or ""}
    if op == "set":
        store.set(key, req["value"])
    elif op == "delete":
        store.delete(key)
    elif op == "evict":
        store.redis.delete(store.cache_key(key))
    elif op == "inspect":
        cached = store.redis.get(store.cache_key(key)) if hasattr(store, "redis") else None
        db_value = store.db_get(key)
        return {"ok": True, "cached": cached is not None, "cache_found": cached is not None,
                "cache_value": cached or "", "db_found": db_value is not None, "db_value": db_value or ""}
    else:
        return {"ok": False, "error": f"unknown op {op!r}", "outcome": "failed"}
    return {"ok": True}


for line in sys.stdin:
    req = json.loads(line)
    try:
        reply = handle(req)
    except Exception as e:  # the write may have been applied: unknown
        reply = {"ok": False, "error": f"{type(e).__name__}: {e}", "outcome": "unknown"}
    reply["id"] = req["id"]
    print(json.dumps(reply), flush=True)
