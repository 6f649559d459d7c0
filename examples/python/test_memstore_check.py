"""Run the memstore checker on our store from our own test suite.

    /usr/bin/python3 -m pytest examples/python

needs the memstore command: bin/memstore (built by `make test`), or the
path in $MEMSTORE_BIN. The checker starts a private redis-server and a
SQLite file itself, so the test needs redis-server on PATH too.
"""

import os
import pathlib
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
ADAPTER = HERE / "adapter.py"
MEMSTORE = os.environ.get("MEMSTORE_BIN") or str(HERE.parent.parent / "bin" / "memstore")


def memstore_check(tmp_path, variant, seed):
    if not os.access(MEMSTORE, os.X_OK):
        pytest.fail(f"{MEMSTORE} not found: build it with `make bin/memstore` or set MEMSTORE_BIN")
    cmd = [
        MEMSTORE, "check",
        "--exec", f"{sys.executable} {ADAPTER} {variant}",
        "--duration", "3s", "--seed", str(seed), "--out", str(tmp_path),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


@pytest.mark.parametrize("seed", [1, 2])
def test_naive_store_is_caught(tmp_path, seed):
    res = memstore_check(tmp_path, "naive", seed)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "not linearizable" in res.stdout or "CAUGHT" in res.stdout or "FAIL" in res.stdout, res.stdout


def test_db_only_twin_passes(tmp_path):
    res = memstore_check(tmp_path, "db-only", 1)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (tmp_path / "latest" / "report.html").exists()
