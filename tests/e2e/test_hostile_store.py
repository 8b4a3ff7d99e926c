"""A hostile disk and a careless host (issue 17): a store that lost acknowledged commits is
refused at start, not served short; blobs are deleted only on a committed release; the data
directory is private; a function's /tmp is its EphemeralStorage on disk."""

from __future__ import annotations

import os
import stat
import subprocess

from helpers import (ROLE, RUNTIME, STRATUS_BIN, clean_env, create_function, invoke, make_zip,
                     sha256_hex, update_configuration)

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


# --- 9. ephemeral storage as on Lambda -------------------------------------------------------

FILLER = """
import errno, os
def handler(event, context):
    st = os.statvfs("/tmp")
    size_mb = st.f_blocks * st.f_frsize // (1 << 20)
    if event.get("stat"):
        return {"size_mb": size_mb}
    chunk = b"\\xa5" * (1 << 20)
    written, error = 0, None
    fd = os.open("/tmp/fill", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while written < event["mb"]:
            try:
                os.write(fd, chunk)
            except OSError as e:
                error = errno.errorcode.get(e.errno, str(e.errno))
                break
            written += 1
    finally:
        os.close(fd)
        os.unlink("/tmp/fill")
    return {"written_mb": written, "error": error, "size_mb": size_mb}
"""

BYSTANDER = """
def handler(event, context):
    return {"alive": event["n"]}
"""


def test_tmp_is_ephemeral_storage_on_disk_not_memory(exec_server_factory):
    import concurrent.futures

    import botocore.exceptions
    import pytest

    server = exec_server_factory()
    lam = server.client()
    unchecked = server.client(parameter_validation=False)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        unchecked.create_function(FunctionName="small", Runtime="python3.11", Role=ROLE,
                            Handler="app.handler", Code={"ZipFile": make_zip({"app.py": FILLER})},
                            EphemeralStorage={"Size": 511})
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert "ephemeralStorage.size" in e.value.response["Error"]["Message"]

    create_function(lam, "filler", {"app.py": FILLER}, runtime="python3.11",
                    handler="app.handler", MemorySize=128, Timeout=120)
    create_function(lam, "bystander", {"app.py": BYSTANDER}, runtime="python3.11",
                    handler="app.handler")
    assert lam.get_function_configuration(FunctionName="filler")["EphemeralStorage"] == {
        "Size": 512}

    # 128 MB of memory, 200 MB to /tmp: as on Lambda, /tmp is not the function's memory.
    got = invoke(lam, "filler", {"mb": 200})
    assert got.function_error is None, got.raw
    assert got.payload["written_mb"] == 200 and got.payload["error"] is None, got.payload
    assert got.payload["size_mb"] == 512, got.payload

    # Past its 512 MB: ENOSPC, while another function keeps answering.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        filling = pool.submit(invoke, server.client(), "filler", {"mb": 1024})
        n = 0
        while not filling.done() or n == 0:
            n += 1
            answer = invoke(lam, "bystander", {"n": n})
            assert answer.payload == {"alive": n}, answer.raw
        got = filling.result()
    assert got.function_error is None, got.raw
    assert got.payload["error"] == "ENOSPC", got.payload
    assert 490 < got.payload["written_mb"] <= 512, got.payload

    # The size follows UpdateFunctionConfiguration.
    update_configuration(lam, "filler", EphemeralStorage={"Size": 1024})
    got = invoke(lam, "filler", {"stat": True})
    assert got.payload["size_mb"] == 1024, got.payload
