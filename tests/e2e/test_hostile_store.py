"""A hostile disk and a careless host (issue 17): a store that lost acknowledged commits is
refused at start, not served short; blobs are deleted only on a committed release; the data
directory is private; a function's /tmp is its EphemeralStorage on disk."""

from __future__ import annotations

import os
import stat
import subprocess

from helpers import (ROLE, RUNTIME, STRATUS_BIN, clean_env, create_function, invoke, make_zip,
                     sha256_hex)

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


# --- 8. private by default -------------------------------------------------------------------

READER = """
import os
def handler(event, context):
    with open(os.path.join(os.environ["LAMBDA_TASK_ROOT"], "data.txt")) as f:
        return {"data": f.read(), "uid": os.getuid()}
"""


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def store_files(data_dir):
    db = data_dir / "stratus.db"
    return [db, data_dir / "stratus.db-wal", data_dir / "stratus.db-shm",
            data_dir / "stratus.db-commits", data_dir / "credentials", data_dir / "usage.db"]


def test_the_data_dir_is_private_whatever_the_umask_and_functions_still_run(exec_server_factory):
    old = os.umask(0)
    try:
        server = exec_server_factory()
    finally:
        os.umask(old)
    lam = server.client()
    create_function(lam, "reader", {"app.py": READER, "data.txt": "readable by the function"},
                    runtime="python3.11", handler="app.handler")
    got = invoke(lam, "reader")
    assert got.status == 200 and got.function_error is None, got.raw
    assert got.payload == {"data": "readable by the function", "uid": 993}

    d = server.data_dir
    assert mode(d) == 0o700
    for f in store_files(d):
        assert mode(f) == 0o600, f
    blobs = [p for p in (d / "blobs").glob("??/*") if p.is_file()]
    assert blobs
    for p in blobs:
        assert mode(p) == 0o600, p
        assert mode(p.parent) == 0o700, p.parent
    assert mode(d / "blobs") == 0o700
    assert mode(d / "logs") == 0o700


def test_a_wider_data_dir_is_named_in_a_warning_and_what_stratus_made_is_tightened(
        server_factory, tmp_path):
    d = tmp_path / "shared-data"
    d.mkdir()
    os.chmod(d, 0o755)
    server = server_factory(data_dir=d)
    create(server.client(), "f", make_zip(seed="hostile-store-private"))
    assert server.terminate() == 0
    # As an older version (or a copy) left them.
    for f in (d / "stratus.db", d / "credentials"):
        os.chmod(f, 0o644)
    os.chmod(d / "blobs", 0o755)

    server.start()
    log = server.log_paths[-1].read_text()
    assert str(d) in log and "0755" in log and "data directory" in log, log
    assert str(d / "credentials") in log and "0644" in log, log
    assert mode(d) == 0o755, "the operator's own directory is warned about, not changed"
    for f in store_files(d):
        if f.exists():
            assert mode(f) == 0o600, f
    assert mode(d / "blobs") == 0o700
    assert [f["FunctionName"] for f in server.client().list_functions()["Functions"]] == ["f"]
