"""Durability and process life: kill -9 and restart, garbage-free blob storage, SIGTERM,
credentials across restarts, configuration precedence."""

from __future__ import annotations

import hashlib
import os
import stat
import time
import subprocess
import urllib.request

import botocore.exceptions
import pytest

from helpers import ROLE, RUNTIME, STRATUS_BIN, clean_env, make_zip, sha256_b64, sha256_hex

FAST_WAIT = {"Delay": 0.2, "MaxAttempts": 150}
KEYS = ("FunctionName", "FunctionArn", "CodeSha256", "CodeSize", "RevisionId", "MemorySize",
        "Timeout", "Description", "Environment", "Handler", "Runtime", "Role", "Version",
        "LastModified")


def create(lam, name, code, role=ROLE, **kw):
    return lam.create_function(FunctionName=name, Runtime=RUNTIME, Role=role,
                               Handler="bootstrap", Code={"ZipFile": code}, **kw)


def download(location: str) -> bytes:
    with urllib.request.urlopen(location, timeout=30) as r:
        return r.read()


def snapshot(lam, name, qualifier=None):
    kw = {"FunctionName": name}
    if qualifier:
        kw["Qualifier"] = qualifier
    got = lam.get_function(**kw)
    conf = {k: got["Configuration"].get(k) for k in KEYS}
    return conf, got.get("Tags"), download(got["Code"]["Location"])


def test_kill9_restart_keeps_everything(server):
    lam = server.client()
    codes = {n: make_zip(seed=f"persist-{n}") for n in ("alpha", "beta", "gamma")}
    create(lam, "alpha", codes["alpha"], Publish=True, Tags={"team": "red", "tier": "1"},
           Environment={"Variables": {"MODE": "durable"}}, MemorySize=512)
    create(lam, "beta", codes["beta"])
    create(lam, "gamma", codes["gamma"], Description="third")
    for n in codes:
        lam.get_waiter("function_active_v2").wait(FunctionName=n, WaiterConfig=FAST_WAIT)
    beta_v2 = make_zip(seed="persist-beta-v2")
    lam.update_function_code(FunctionName="beta", ZipFile=beta_v2)
    lam.get_waiter("function_updated_v2").wait(FunctionName="beta", WaiterConfig=FAST_WAIT)
    lam.update_function_configuration(FunctionName="beta", Timeout=42)
    lam.tag_resource(Resource="arn:aws:lambda:us-east-1:000000000000:function:beta",
                     Tags={"after": "create"})
    codes["beta"] = beta_v2

    before = {n: snapshot(lam, n) for n in codes}
    before_v1 = snapshot(lam, "alpha", "1")
    creds_before = dict(server.credentials)
    creds_file_before = server.credentials_file.read_bytes()

    assert server.kill9() == -9
    server.start()

    assert server.credentials == creds_before
    assert server.credentials_file.read_bytes() == creds_file_before
    # The old key pair signs requests to the new process.
    lam = server.client(access_key=creds_before["aws_access_key_id"],
                        secret_key=creds_before["aws_secret_access_key"])
    assert [f["FunctionName"] for f in lam.list_functions()["Functions"]] == sorted(codes)
    for n, code in codes.items():
        conf, tags, data = snapshot(lam, n)
        assert conf == before[n][0], n
        assert tags == before[n][1], n
        assert data == code == before[n][2], n
        assert conf["CodeSha256"] == sha256_b64(code)
        lam.get_waiter("function_active_v2").wait(FunctionName=n, WaiterConfig=FAST_WAIT)
    assert before["alpha"][1] == {"team": "red", "tier": "1"}
    assert before["beta"][1] == {"after": "create"}
    assert snapshot(lam, "alpha", "1") == before_v1
    assert lam.get_account_settings()["AccountUsage"]["FunctionCount"] == 3


def test_kill9_during_pending_and_in_progress_recovers(server):
    lam = server.client()
    settled = make_zip(seed="settled")
    create(lam, "settled", settled)
    lam.get_waiter("function_active_v2").wait(FunctionName="settled", WaiterConfig=FAST_WAIT)
    new_code = make_zip(seed="settled-v2")
    early = make_zip(seed="early")
    # No waiting: kill while the create and the code update may still be in flight.
    lam.update_function_code(FunctionName="settled", ZipFile=new_code)
    create(lam, "early", early)
    server.kill9()
    server.start()

    lam = server.client()
    lam.get_waiter("function_active_v2").wait(FunctionName="early", WaiterConfig=FAST_WAIT)
    lam.get_waiter("function_updated_v2").wait(FunctionName="settled", WaiterConfig=FAST_WAIT)
    got = lam.get_function(FunctionName="early")
    assert download(got["Code"]["Location"]) == early
    got = lam.get_function(FunctionName="settled")
    assert got["Configuration"]["CodeSha256"] == sha256_b64(new_code)
    assert download(got["Code"]["Location"]) == new_code


def test_blobs_are_exactly_the_live_code_after_deletes_and_restart(server):
    lam = server.client()
    z = {i: make_zip(seed=f"blob-{i}") for i in range(1, 6)}
    create(lam, "a", z[1])
    create(lam, "b", z[2])
    create(lam, "c", z[1])                 # same package as a: stored once
    create(lam, "d", z[3], Publish=True)   # version 1 keeps z3
    for n in "abcd":
        lam.get_waiter("function_active_v2").wait(FunctionName=n, WaiterConfig=FAST_WAIT)
    lam.update_function_code(FunctionName="a", ZipFile=z[4])   # z1 still used by c
    lam.update_function_code(FunctionName="d", ZipFile=z[5])   # $LATEST z5, version 1 z3
    for n in "ad":
        lam.get_waiter("function_updated_v2").wait(FunctionName=n, WaiterConfig=FAST_WAIT)
    lam.delete_function(FunctionName="b")                       # z2 unreferenced
    e = make_zip(seed="blob-e")
    create(lam, "e", e)
    lam.delete_function(FunctionName="e")                       # created then deleted

    expected = {sha256_hex(z[i]) for i in (1, 3, 4, 5)}
    assert len(expected) == 4

    server.kill9()
    server.start()
    assert server.blob_names() == expected
    assert len(all_blob_files(server)) == len(expected)
    for path in (server.data_dir / "blobs").glob("??/*"):
        assert path.parent.name == path.name[:2]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name

    # ... and again after a graceful restart, with the data still served.
    server.restart()
    assert server.blob_names() == expected
    lam = server.client()
    assert download(lam.get_function(FunctionName="d", Qualifier="1")["Code"]["Location"]) == z[3]
    assert download(lam.get_function(FunctionName="c")["Code"]["Location"]) == z[1]
    assert download(lam.get_function(FunctionName="a")["Code"]["Location"]) == z[4]


def all_blob_files(server):
    return [p for p in (server.data_dir / "blobs").rglob("*") if p.is_file()]


def test_kill9_during_uploads_leaves_no_orphans(server):
    import concurrent.futures
    import io
    import zipfile

    def big_zip(i):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
            zf.writestr("bootstrap", f"#!/bin/sh\n# {i}\n")
            zf.writestr("payload.bin", os.urandom(3 * 1024 * 1024))
        return buf.getvalue()

    zips = {f"up-{i}": big_zip(i) for i in range(6)}
    clients = {n: server.client() for n in zips}
    with concurrent.futures.ThreadPoolExecutor(len(zips)) as pool:
        futures = [pool.submit(create, clients[n], n, z) for n, z in zips.items()]
        # Kill as soon as one create has answered, while the others are still in flight.
        pending, succeeded = set(futures), False
        while pending and not succeeded:
            done, pending = concurrent.futures.wait(
                pending, return_when=concurrent.futures.FIRST_COMPLETED, timeout=60)
            assert done, "no create answered within 60s"
            succeeded = any(f.exception() is None for f in done)
        assert succeeded, [repr(f.exception()) for f in futures]
        server.kill9()
        for f in futures:
            try:
                f.result(timeout=60)
            except Exception:
                pass  # cut off by the kill

    server.start()
    lam = server.client()
    live = [f["FunctionName"] for f in lam.list_functions()["Functions"]]
    assert live, "the create that answered before the kill must survive it"
    assert server.blob_names() == {sha256_hex(zips[n]) for n in live}
    assert len(all_blob_files(server)) == len(live), "leftover temporary files under blobs/"
    for n in live:
        assert download(lam.get_function(FunctionName=n)["Code"]["Location"]) == zips[n]


def test_sigterm_exits_zero_promptly(server):
    lam = server.client()
    create(lam, "survivor", make_zip(seed="survivor"))
    t0 = time.monotonic()
    code = server.terminate(timeout=10)
    elapsed = time.monotonic() - t0
    assert code == 0
    assert elapsed < 5, f"SIGTERM took {elapsed:.1f}s"
    server.start()
    assert server.client().get_function(FunctionName="survivor")["Configuration"]["FunctionName"] == "survivor"


def test_sigterm_with_idle_keepalive_connection_still_exits(server):
    import http.client
    import urllib.parse
    parts = urllib.parse.urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request("GET", "/_stratus/health")
    assert conn.getresponse().read()
    try:
        t0 = time.monotonic()
        assert server.terminate(timeout=10) == 0
        assert time.monotonic() - t0 < 5
    finally:
        conn.close()


def test_credentials_file_private_and_reused(server):
    path = server.credentials_file
    assert path == server.data_dir / "credentials"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    creds = dict(server.credentials)
    assert creds["aws_access_key_id"] and creds["aws_secret_access_key"]
    assert server.terminate() == 0
    server.start()
    assert server.credentials == creds
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert server.client().list_functions()["Functions"] == []


def test_fresh_data_dirs_get_different_keys(server_factory):
    a, b = server_factory(), server_factory()
    assert a.credentials["aws_access_key_id"] != b.credentials["aws_access_key_id"]
    assert a.credentials["aws_secret_access_key"] != b.credentials["aws_secret_access_key"]
    # A key of one server means nothing to the other.
    other = b.client(access_key=a.credentials["aws_access_key_id"],
                     secret_key=a.credentials["aws_secret_access_key"])
    with pytest.raises(botocore.exceptions.ClientError) as e:
        other.list_functions()
    assert e.value.response["Error"]["Code"] == "UnrecognizedClientException"


def test_fixed_credentials_from_environment(server_factory):
    ak, sk = "AKIAE2EFIXEDKEY00001", "e2e-fixed-secret-key-0123456789abcdefghij"
    s = server_factory(env={"STRATUS_ACCESS_KEY_ID": ak, "STRATUS_SECRET_ACCESS_KEY": sk})
    assert s.client(access_key=ak, secret_key=sk).list_functions()["Functions"] == []
    # Whatever the credentials file holds must work too: it is what the server tells users.
    assert s.client().list_functions()["Functions"] == []
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s.client(access_key=ak, secret_key=sk + "x").list_functions()
    assert e.value.response["Error"]["Code"] == "InvalidSignatureException"


CONFIG_TOML = """\
region = "eu-west-1"
account_id = "111111111111"
concurrent_executions = 50
log = "info"
data_dir = "{file_data_dir}"
"""


@pytest.mark.parametrize("how,expected_region", [
    ("file", "eu-west-1"),
    ("file-via-env", "eu-west-1"),
    ("file+env", "us-west-2"),
    ("file+flag", "ap-southeast-2"),
    ("file+env+flag", "ap-southeast-2"),
])
def test_config_precedence(server_factory, tmp_path, how, expected_region):
    file_data_dir = tmp_path / "data-dir-from-file"
    cfg = tmp_path / "stratus.toml"
    cfg.write_text(CONFIG_TOML.format(file_data_dir=file_data_dir))
    args, env = [], {}
    if how == "file-via-env":
        env["STRATUS_CONFIG"] = str(cfg)
    else:
        args += ["--config", str(cfg)]
    if "env" in how.split("+"):
        env["STRATUS_REGION"] = "us-west-2"
    if "flag" in how:
        args += ["--region", "ap-southeast-2"]
    s = server_factory(args=args, env=env, region=expected_region)

    # --data-dir (a flag) beats the file's data_dir.
    assert s.credentials_file == s.data_dir / "credentials"
    assert not file_data_dir.exists()

    lam = s.client()
    # The tests' role, made in this server's account (conftest).
    resp = create(lam, "where", make_zip(seed="where"),
                  role="arn:aws:iam::111111111111:role/stratus-e2e")
    assert resp["FunctionArn"] == f"arn:aws:lambda:{expected_region}:111111111111:function:where"
    assert lam.get_account_settings()["AccountLimit"]["ConcurrentExecutions"] == 50


def test_bad_config_file_fails_to_start(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('region = "eu-west-1"\nno_such_key = 1\n')
    proc = subprocess.run([str(STRATUS_BIN), "server", "--listen", "127.0.0.1:0",
                           "--data-dir", str(tmp_path / "d"), "--config", str(cfg)],
                          capture_output=True, text=True, timeout=30, env=clean_env())
    assert proc.returncode != 0
    assert "stratus listening on" not in proc.stdout
    assert "no_such_key" in proc.stderr
