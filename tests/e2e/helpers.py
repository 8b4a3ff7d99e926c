"""Helpers shared by the end-to-end tests: in-memory zips, raw (hand-signed) HTTP requests,
and small polling utilities. Imported by conftest.py and the test modules."""

from __future__ import annotations

import base64
import datetime
import hashlib
import http.client
import io
import json
import os
import subprocess
import sys
import time
import urllib.parse
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import botocore.auth
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

REPO = Path(__file__).resolve().parents[2]
STRATUS_BIN = Path(os.environ.get("STRATUS_BIN", REPO / "target" / "debug" / "stratus"))

# Variables that would change how the server or the AWS clients behave behind the tests' back.
_SCRUBBED_PREFIXES = ("STRATUS_", "AWS_")


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without STRATUS_* and AWS_* variables, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}
    env["NO_COLOR"] = "1"  # plain server logs, for the failure dumps
    env.update(extra or {})
    return env


ROLE = "arn:aws:iam::000000000000:role/stratus-e2e"
# A role Lambda may assume (as AWS requires of a function's role), allowed everything: the
# tests' functions that call Stratus from inside keep working; tests of permissions make
# roles of their own.
LAMBDA_TRUST = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
    "Action": "sts:AssumeRole"}]})
ALLOW_ALL = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Action": "*", "Resource": "*"}]})
DEFAULT_ACCOUNT = "000000000000"
# A runtime every host offers: the zip brings its own `bootstrap`.
RUNTIME = "provided.al2023"


def make_zip(files: dict[str, bytes | str] | None = None, *, seed: str = "") -> bytes:
    """Builds a small zip in memory. Without `files`, one executable `bootstrap` whose
    content depends on `seed`, so different seeds give different code packages."""
    if files is None:
        files = {"bootstrap": f"#!/bin/sh\n# stratus e2e {seed}\necho hello\n"}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.external_attr = (0o100755 << 16) if name == "bootstrap" else (0o100644 << 16)
            info.compress_type = zipfile.ZIP_DEFLATED
            data = content.encode() if isinstance(content, str) else content
            zf.writestr(info, data)
    return buf.getvalue()


def zip_of_zeros(uncompressed_bytes: int) -> bytes:
    """A zip holding one file of `uncompressed_bytes` zeros, written in chunks so the whole
    uncompressed content never sits in memory. 260 MB compresses to about 260 KB."""
    buf = io.BytesIO()
    chunk = bytes(1 << 20)
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("zeros.bin", "w", force_zip64=True) as f:
            left = uncompressed_bytes
            while left > 0:
                n = min(left, len(chunk))
                f.write(chunk[:n])
                left -= n
        zf.writestr("bootstrap", "#!/bin/sh\necho big\n")
    return buf.getvalue()


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes

    @property
    def error_type(self) -> str | None:
        """`x-amzn-ErrorType` without the optional `:<url>` suffix AWS may append."""
        value = self.headers.get("x-amzn-errortype")
        return value.split(":", 1)[0] if value is not None else None

    def json(self):
        return json.loads(self.body)

    @property
    def message(self) -> str:
        try:
            doc = self.json()
        except ValueError:
            return self.body.decode(errors="replace")
        if isinstance(doc, dict):
            return str(doc.get("message") or doc.get("Message") or "")
        return ""


def http_request(method: str, url: str, headers: dict[str, str] | None = None,
                 body: bytes = b"", timeout: float = 30.0) -> RawResponse:
    """One plain HTTP request (no retries, no redirects), any status returned as is."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        conn.request(method, target, body=body or None, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return RawResponse(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
    finally:
        conn.close()


@contextmanager
def frozen_signing_clock(when: datetime.datetime | None):
    """Makes botocore's signers use `when` (naive UTC) as "now"."""
    if when is None:
        yield
        return
    with mock.patch.object(botocore.auth, "get_current_datetime", lambda *a, **k: when):
        yield


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def sign_request(method: str, url: str, *, access_key: str, secret_key: str,
                 body: bytes = b"", headers: dict[str, str] | None = None,
                 region: str = "us-east-1", service: str = "lambda",
                 when: datetime.datetime | None = None) -> AWSRequest:
    """Signs a request with botocore's SigV4 signer, optionally at another time."""
    req = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    with frozen_signing_clock(when):
        SigV4Auth(Credentials(access_key, secret_key), service, region).add_auth(req)
    return req


def send(req: AWSRequest, *, body: bytes | None = None) -> RawResponse:
    """Sends a signed AWSRequest as is (or with another body, to tamper with it)."""
    data = req.body if body is None else body
    if isinstance(data, str):
        data = data.encode()
    return http_request(req.method, req.url, dict(req.headers.items()), data or b"")


def signed_call(method: str, url: str, *, access_key: str, secret_key: str,
                body: bytes = b"", headers: dict[str, str] | None = None,
                region: str = "us-east-1", when: datetime.datetime | None = None) -> RawResponse:
    return send(sign_request(method, url, access_key=access_key, secret_key=secret_key,
                             body=body, headers=headers, region=region, when=when))


def presign(url: str, *, access_key: str, secret_key: str, expires: int = 60,
            region: str = "us-east-1", service: str = "lambda",
            when: datetime.datetime | None = None) -> str:
    """A presigned GET URL made by botocore's SigV4QueryAuth."""
    req = AWSRequest(method="GET", url=url)
    with frozen_signing_clock(when):
        SigV4QueryAuth(Credentials(access_key, secret_key), service, region,
                       expires=expires).add_auth(req)
    return req.url


def wait_until(predicate, *, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    """Polls `predicate` until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


# --- cgroups ---------------------------------------------------------------------------------

CGROUP_BASE = Path("/sys/fs/cgroup")


def cgroup_v2_root() -> Path | None:
    """The cgroup v2 root the server would use (it prefers v2 when it has memory and pids)."""
    for root in (CGROUP_BASE, CGROUP_BASE / "unified"):
        try:
            ctrls = (root / "cgroup.controllers").read_text().split()
        except OSError:
            continue
        if "memory" in ctrls and "pids" in ctrls:
            return root
    return None


def cgroup_dirs(parent: str) -> list[Path]:
    """The directories a server with `cgroup_parent = parent` uses: one on cgroup v2, or one
    per v1 controller (memory, pids, cpu)."""
    v2 = cgroup_v2_root()
    if v2 is not None:
        return [v2 / parent]
    cpu = CGROUP_BASE / "cpu"
    if not (cpu / "cpu.cfs_quota_us").is_file():
        cpu = CGROUP_BASE / "cpu,cpuacct"
    return [CGROUP_BASE / "memory" / parent, CGROUP_BASE / "pids" / parent, cpu / parent]


def environment_cgroups(parent: str) -> list[Path]:
    """The environments' cgroup directories under `parent`, in every hierarchy (not those of
    blank sandboxes, `pool-*`, which wait for a function)."""
    return sorted(p for d in cgroup_dirs(parent) if d.is_dir() for p in d.iterdir()
                  if p.is_dir() and not p.name.startswith("pool-"))


# --- functions that run ----------------------------------------------------------------------

FAST_WAIT = {"Delay": 0.1, "MaxAttempts": 300}


def create_function(lam, name: str, files: dict[str, bytes | str], *, runtime: str,
                    handler: str, wait: bool = True, **kw) -> dict:
    """Creates a function from `files` and (by default) waits until it is Active."""
    kw.setdefault("Role", ROLE)
    resp = lam.create_function(FunctionName=name, Runtime=runtime, Handler=handler,
                               Code={"ZipFile": make_zip(files)}, **kw)
    if wait:
        lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig=FAST_WAIT)
    return resp


def update_configuration(lam, name: str, **kw) -> dict:
    resp = lam.update_function_configuration(FunctionName=name, **kw)
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig=FAST_WAIT)
    return resp


@dataclass
class Invoked:
    """One Invoke's answer, decoded."""
    status: int
    request_id: str
    function_error: str | None
    executed_version: str | None
    raw: bytes
    log: str | None  # the decoded LogResult, when asked for
    seconds: float  # wall time of the call

    @property
    def payload(self):
        return json.loads(self.raw) if self.raw else None

    @property
    def log_lines(self) -> list[str]:
        return (self.log or "").splitlines()


def invoke(lam, name: str, event=None, *, tail: bool = False, raw: bytes | None = None,
           **kw) -> Invoked:
    """Invokes `name` synchronously with `event` (JSON-encoded) or the bytes `raw`."""
    payload = raw if raw is not None else json.dumps({} if event is None else event).encode()
    started = time.monotonic()
    resp = lam.invoke(FunctionName=name, Payload=payload,
                      LogType="Tail" if tail else "None", **kw)
    body = resp["Payload"].read()
    seconds = time.monotonic() - started
    log = base64.b64decode(resp["LogResult"]).decode() if "LogResult" in resp else None
    return Invoked(status=resp["StatusCode"], request_id=resp["ResponseMetadata"]["RequestId"],
                   function_error=resp.get("FunctionError"),
                   executed_version=resp.get("ExecutedVersion"), raw=body, log=log,
                   seconds=seconds)


def health(server) -> dict:
    return json.loads(http_request("GET", server.url + "/_stratus/health").body)


def aws(server, tmp_path, *args, check=True, extra_env=None):
    """The real AWS CLI (v1, from PyPI) with the server's credentials file and `--endpoint-url`."""
    env = clean_env({
        "AWS_SHARED_CREDENTIALS_FILE": str(server.credentials_file),
        "AWS_CONFIG_FILE": str(tmp_path / "no-such-aws-config"),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_PAGER": "",
        "AWS_MAX_ATTEMPTS": "1",
        **(extra_env or {}),
    })
    cmd = [sys.executable, "-m", "awscli", "--endpoint-url", server.url, "--output", "json",
           *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    if check:
        assert proc.returncode == 0, f"{args}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    return proc


def ensure_role(iam, name: str = ROLE.rsplit("/", 1)[1], trust: str = LAMBDA_TRUST,
                policy: str | None = ALLOW_ALL) -> str:
    """Creates role `name` (trusting Lambda, with `policy` inline) unless it exists; returns
    its ARN."""
    try:
        arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        return iam.get_role(RoleName=name)["Role"]["Arn"]
    if policy is not None:
        iam.put_role_policy(RoleName=name, PolicyName="all", PolicyDocument=policy)
    return arn
