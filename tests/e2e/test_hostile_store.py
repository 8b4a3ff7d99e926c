"""A hostile disk and a careless host (issue 17): a store that lost acknowledged commits is
refused at start, not served short; blobs are deleted only on a committed release; the data
directory is private; a function's /tmp is its EphemeralStorage on disk."""

from __future__ import annotations

import os
import stat
import subprocess

from helpers import ROLE, RUNTIME, STRATUS_BIN, clean_env, make_zip, sha256_hex

FAST_WAIT = {"Delay": 0.1, "MaxAttempts": 300}


def create(lam, name, code, **kw):
    return lam.create_function(FunctionName=name, Runtime=RUNTIME, Role=ROLE,
                               Handler="bootstrap", Code={"ZipFile": code}, **kw)


def refused_start(data_dir, *args) -> tuple[int, str]:
    """Runs `stratus server` on `data_dir`, expecting it to exit by itself; returns its exit
    code and stderr (fails the test if it is still running at the deadline)."""
    proc = subprocess.run(
        [str(STRATUS_BIN), "server", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir),
         *args],
        stdin=subprocess.DEVNULL, capture_output=True, env=clean_env(), timeout=60)
    return proc.returncode, proc.stderr.decode(errors="replace")


def test_a_cut_short_wal_is_refused_then_accepted_and_no_package_is_lost(server_factory):
    server = server_factory()
    lam = server.client()
    zips = {n: make_zip(seed=f"hostile-store-{n}") for n in ("one", "two", "three", "four")}
    for n, z in zips.items():
        create(lam, n, z)
        lam.get_waiter("function_active_v2").wait(FunctionName=n, WaiterConfig=FAST_WAIT)
    # Created and deleted: its release is committed, so its package goes.
    gone = make_zip(seed="hostile-store-released")
    create(lam, "released", gone)
    lam.delete_function(FunctionName="released")
    assert sha256_hex(gone) not in server.blob_names()

    # Every commit above is in the WAL (a kill leaves it unchecked); half of it goes, as
    # on a full disk or a copy cut short.
    assert server.kill9() == -9
    wal = server.data_dir / "stratus.db-wal"
    size = wal.stat().st_size
    assert size > 32 + 4096
    os.truncate(wal, size // 2)

    code, stderr = refused_start(server.data_dir)
    assert code != 0, stderr
    assert "damaged" in stderr and "lost" in stderr, stderr
    assert "--accept-damaged-store" in stderr and "backup" in stderr, stderr
    assert wal.stat().st_size == size // 2, "a refused start must leave the store untouched"

    server.args = ["--accept-damaged-store"]
    server.start()
    lam = server.client()
    left = {f["FunctionName"] for f in lam.list_functions()["Functions"]}
    assert left < set(zips), left
    # The lost functions' packages are still on disk, for repair; the released one is not.
    assert {sha256_hex(z) for z in zips.values()} <= server.blob_names()
    assert sha256_hex(gone) not in server.blob_names()
    assert "damaged store" in server.stderr_text()

    # Accepted once: the next plain start is clean, and releases are collected again.
    server.args = []
    server.restart()
    lam = server.client()
    assert {f["FunctionName"] for f in lam.list_functions()["Functions"]} == left
    fresh = make_zip(seed="hostile-store-after")
    create(lam, "after", fresh)
    assert sha256_hex(fresh) in server.blob_names()
    lam.delete_function(FunctionName="after")
    assert sha256_hex(fresh) not in server.blob_names()
    assert {sha256_hex(z) for z in zips.values()} <= server.blob_names()
