"""The Stratus server under test and the clients that drive it.

`Server` starts `stratus server --listen 127.0.0.1:0 --data-dir <tmp> --config <toml>` with
its own `cgroup_parent` (`stratus-bench-<random>-<n>`), waits for the two readiness lines on
stdout and for `/_stratus/health`, and stops it with SIGTERM (the sandbox helper then kills
every environment and removes their cgroups).

Requests are SigV4-signed with botocore's signer and sent as raw bytes over plain sockets
(`RawConn`): the client costs a few tens of microseconds per request in Python, against
hundreds for boto3 (the harness measures both). A signature stays valid for 15 minutes and
Stratus, like AWS, accepts the same signed request more than once, so the warm loops and the
C load generator replay one signed request instead of signing each (`Signed.fresh()`
re-signs after 5 minutes).
"""

from __future__ import annotations

import base64
import configparser
import io
import json
import os
import queue
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

LISTEN_PREFIX = "stratus listening on "
CREDENTIALS_PREFIX = "credentials: export AWS_SHARED_CREDENTIALS_FILE="
ROLE = "arn:aws:iam::000000000000:role/stratus-bench"
REGION = "us-east-1"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
RESIGN_AFTER = 300.0  # seconds; SigV4 allows 15 minutes of skew


class BenchError(RuntimeError):
    pass


# --- raw HTTP ---------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self):
        return json.loads(self.body)


class RawConn:
    """One persistent HTTP/1.1 connection; sends prepared request bytes, reads one response."""

    def __init__(self, host: str, port: int, timeout: float = 60.0):
        self.host, self.port, self.timeout = host, port, timeout
        self.sock: socket.socket | None = None
        self.buf = b""

    def connect(self) -> "RawConn":
        self.close()
        s = socket.create_connection((self.host, self.port), timeout=self.timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self.buf = s, b""
        return self

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None

    def send(self, data: bytes):
        if self.sock is None:
            self.connect()
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(262144)
        if not chunk:
            raise ConnectionError("connection closed by the server")
        self.buf += chunk

    def read_response(self) -> Response:
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                while b"\r\n" not in self.buf:
                    self._fill()
                size_line, self.buf = self.buf.split(b"\r\n", 1)
                size = int(size_line.split(b";")[0], 16)
                while len(self.buf) < size + 2:
                    self._fill()
                body += self.buf[:size]
                self.buf = self.buf[size + 2:]
                if size == 0:
                    break
        else:
            n = int(headers.get("content-length", "0"))
            while len(self.buf) < n:
                self._fill()
            body, self.buf = self.buf[:n], self.buf[n:]
        if headers.get("connection", "").lower() == "close":
            self.close()
        return Response(status, headers, body)

    def request(self, data: bytes) -> Response:
        try:
            self.send(data)
            return self.read_response()
        except (ConnectionError, BrokenPipeError):
            # The server closed an idle keep-alive connection: once more on a new one.
            self.connect()
            self.send(data)
            return self.read_response()


# --- signing ----------------------------------------------------------------------------


def sign(method: str, host: str, port: int, path: str, body: bytes, headers: dict[str, str],
         creds: tuple[str, str], service: str = "lambda") -> bytes:
    """The complete bytes of a SigV4-signed HTTP/1.1 request."""
    url = f"http://{host}:{port}{path}"
    req = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
    SigV4Auth(Credentials(*creds), service, REGION).add_auth(req)
    out = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
    for k, v in req.headers.items():
        if k.lower() in ("host", "content-length"):
            continue
        out.append(f"{k}: {v}")
    out.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + body


class Signed:
    """One signed request kept for replay, re-signed when it gets old."""

    def __init__(self, make):
        self.make = make
        self.data = make()
        self.at = time.monotonic()

    def fresh(self) -> bytes:
        if time.monotonic() - self.at > RESIGN_AFTER:
            self.data, self.at = self.make(), time.monotonic()
        return self.data


# --- zips -------------------------------------------------------------------------------


def make_zip(files: dict[str, bytes | str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.external_attr = (0o100755 if name == "bootstrap" else 0o100644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, content.encode() if isinstance(content, str) else content)
    return buf.getvalue()


# --- cgroups ----------------------------------------------------------------------------

CGROUP_BASE = Path("/sys/fs/cgroup")


def cgroup_v2_root() -> Path | None:
    """The v2 root Stratus would use: it prefers v2 when it offers memory and pids."""
    for root in (CGROUP_BASE, CGROUP_BASE / "unified"):
        try:
            ctrls = (root / "cgroup.controllers").read_text().split()
        except OSError:
            continue
        if "memory" in ctrls and "pids" in ctrls:
            return root
    return None


def cgroup_dirs(parent: str) -> list[Path]:
    v2 = cgroup_v2_root()
    if v2 is not None:
        return [v2 / parent]
    cpu = CGROUP_BASE / "cpu"
    if not (cpu / "cpu.cfs_quota_us").is_file():
        cpu = CGROUP_BASE / "cpu,cpuacct"
    return [CGROUP_BASE / "memory" / parent, CGROUP_BASE / "pids" / parent, cpu / parent]


def subdirs(d: Path) -> list[Path]:
    """The directories in `d`; none when `d` is gone, even while it is being read (the
    helper removes a server's cgroup parents as it exits)."""
    try:
        return [p for p in d.iterdir() if p.is_dir()]
    except FileNotFoundError:
        return []


def memory_cgroup_dir(parent: str) -> Path:
    v2 = cgroup_v2_root()
    return (v2 / parent) if v2 is not None else CGROUP_BASE / "memory" / parent


# --- the server -------------------------------------------------------------------------


def lambda_health(doc: dict) -> dict:
    """Lambda's figures from a `/_stratus/health` document, in either shape: since the front
    door (`crates/gateway`) each service reports under `services.<name>`
    (`services.lambda.environments`, `services.lambda.execution`); before it (a baseline
    build, `--baseline-bin`) they were top-level (`environments`, `invocations_in_flight`)
    with `services.execution` a string."""
    services = doc.get("services") or {}
    lam = services.get("lambda")
    if isinstance(lam, dict):
        return lam
    out = {k: v for k, v in doc.items() if k not in ("services", "status", "version", "region")}
    out["execution"] = services.get("execution")
    return out


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRATUS_", "AWS_"))}
    env["NO_COLOR"] = "1"
    return env


def read_credentials(path: Path) -> tuple[str, str]:
    cp = configparser.ConfigParser()
    cp.read(path)
    return cp["default"]["aws_access_key_id"], cp["default"]["aws_secret_access_key"]


_RUN_TAG = secrets.token_hex(4)
_server_count = 0


class Server:
    """One `stratus server` on a fresh data directory and its own cgroup parent."""

    def __init__(self, binary: Path, workdir: Path, *, keep_alive: int = 600,
                 memory_budget_mb: int = 4_000_000, extra_config: str = ""):
        global _server_count
        _server_count += 1
        self.binary = binary
        self.cgroup_parent = f"stratus-bench-{_RUN_TAG}-{_server_count}"
        self.dir = Path(tempfile.mkdtemp(prefix=f"srv{_server_count}-", dir=workdir))
        self.data_dir = self.dir / "data"
        self.config = self.dir / "stratus.toml"
        self.config.write_text(
            f'cgroup_parent = "{self.cgroup_parent}"\n'
            f"memory_budget_mb = {memory_budget_mb}\n"
            f"keep_alive = {keep_alive}\n{extra_config}")
        self.stderr_path = self.dir / "stderr.log"
        self.proc: subprocess.Popen | None = None
        self.host = "127.0.0.1"
        self.port = 0
        self.creds: tuple[str, str] = ("", "")
        self._health: RawConn | None = None
        self._conn: RawConn | None = None
        self.leaked_cgroups = 0  # environment cgroups (per hierarchy) left after stop

    # lifecycle

    def start(self) -> "Server":
        err = open(self.stderr_path, "ab")
        cmd = [str(self.binary), "server", "--listen", "127.0.0.1:0", "--data-dir",
               str(self.data_dir), "--config", str(self.config)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err,
                                     stdin=subprocess.DEVNULL, env=_clean_env())
        err.close()
        lines: queue.Queue = queue.Queue()

        def pump(stream):
            for raw in iter(stream.readline, b""):
                lines.put(raw.decode(errors="replace").rstrip("\n"))
            lines.put(None)

        threading.Thread(target=pump, args=(self.proc.stdout,), daemon=True).start()
        url = cred = None
        deadline = time.monotonic() + START_TIMEOUT
        while url is None or cred is None:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                line = ""
            if line is None or time.monotonic() > deadline:
                self.kill()
                raise BenchError(f"stratus did not start; stderr:\n{self.stderr_tail()}")
            if line.startswith(LISTEN_PREFIX):
                url = line[len(LISTEN_PREFIX):].strip()
            elif line.startswith(CREDENTIALS_PREFIX):
                cred = Path(line[len(CREDENTIALS_PREFIX):].strip())
        m = re.match(r"http://([^:/]+):(\d+)", url)
        self.host, self.port = m.group(1), int(m.group(2))
        self.creds = read_credentials(cred)
        while True:
            try:
                doc = self.health()
                if doc.get("status") == "ready":
                    break
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise BenchError("stratus never reported ready on /_stratus/health")
            time.sleep(0.02)
        if lambda_health(doc).get("execution") != "ready":
            self.stop()
            raise BenchError("stratus cannot create execution environments on this host "
                             f"(health: {doc}); stderr:\n{self.stderr_tail()}")
        return self

    def stop(self):
        """SIGTERM, then waits for the environments' cgroups to go and removes the parents."""
        t_stop = time.monotonic()
        for c in (self._health, self._conn):
            if c is not None:
                c.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT)
        t_exit = time.monotonic()
        # The helper removes the environments' cgroups as it goes; give it a moment, then
        # remove what it left (and count it: Stratus is meant to leave nothing behind).
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and any(
                subdirs(d) for d in cgroup_dirs(self.cgroup_parent)):
            time.sleep(0.05)
        for d in cgroup_dirs(self.cgroup_parent):
            for child in subdirs(d):
                self.leaked_cgroups += 1
                end = time.monotonic() + 10
                while True:
                    try:
                        child.rmdir()
                        break
                    except FileNotFoundError:
                        break
                    except OSError:
                        if time.monotonic() > end:
                            break
                        time.sleep(0.05)
            try:
                d.rmdir()
            except OSError:
                pass
        if os.environ.get("BENCH_DEBUG"):
            print(f"[bench] server {self.cgroup_parent} stop: exit after "
                  f"{t_exit - t_stop:.2f} s, cgroups gone after {time.monotonic() - t_exit:.2f} s"
                  f", {self.leaked_cgroups} left by Stratus", file=sys.stderr)

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def stderr_tail(self, n: int = 4000) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def helper_pid(self) -> int | None:
        """The `stratus sandbox-helper` child of the server."""
        for p in Path("/proc").iterdir():
            if not p.name.isdigit():
                continue
            try:
                stat = (p / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                if ppid == self.pid and b"sandbox-helper" in (p / "cmdline").read_bytes():
                    return int(p.name)
            except (OSError, ValueError, IndexError):
                continue
        return None

    # requests

    def health(self) -> dict:
        if self._health is None:
            self._health = RawConn(self.host, self.port, timeout=10)
        req = (f"GET /_stratus/health HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n").encode()
        return self._health.request(req).json()

    def lambda_health(self) -> dict:
        """Lambda's part of the health document, whichever shape the server writes."""
        return lambda_health(self.health())

    def signed(self, method: str, path: str, body: bytes = b"",
               headers: dict[str, str] | None = None, service: str = "lambda") -> bytes:
        return sign(method, self.host, self.port, path, body, headers or {}, self.creds,
                    service)

    def logs_request(self, op: str, body: bytes) -> bytes:
        """A signed CloudWatch Logs request (JSON 1.1, `X-Amz-Target: Logs_20140328.<op>`)."""
        return self.signed("POST", "/", body,
                           {"Content-Type": "application/x-amz-json-1.1",
                            "X-Amz-Target": f"Logs_20140328.{op}"}, service="logs")

    def logs(self, op: str, doc: dict, conn: "RawConn | None" = None) -> dict:
        """One CloudWatch Logs call; its decoded answer (BenchError unless 200)."""
        if conn is None:
            if self._conn is None:
                self._conn = RawConn(self.host, self.port)
            conn = self._conn
        r = conn.request(self.logs_request(op, json.dumps(doc).encode()))
        if r.status != 200:
            raise BenchError(f"Logs {op}: {r.status} {r.body[:500]!r}")
        return r.json() if r.body else {}

    def call(self, method: str, path: str, doc=None, headers=None) -> Response:
        body = b"" if doc is None else json.dumps(doc).encode()
        if self._conn is None:
            self._conn = RawConn(self.host, self.port)
        return self._conn.request(self.signed(method, path, body, headers))

    def invoke_request(self, name: str, payload: bytes = b"{}", tail: bool = False) -> bytes:
        return self.signed("POST", f"/2015-03-31/functions/{name}/invocations", payload,
                           {"X-Amz-Invocation-Type": "RequestResponse",
                            "X-Amz-Log-Type": "Tail" if tail else "None"})

    def ensure_role(self):
        """The execution role the benchmark's functions name (a server checks that it exists
        and trusts Lambda); nothing to do on a build that predates IAM."""
        if getattr(self, "_role_made", False):
            return
        trust = json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole"}]})
        form = urllib.parse.urlencode({
            "Action": "CreateRole", "Version": "2010-05-08",
            "RoleName": ROLE.rsplit("/", 1)[1], "AssumeRolePolicyDocument": trust}).encode()
        if self._conn is None:
            self._conn = RawConn(self.host, self.port)
        r = self._conn.request(self.signed(
            "POST", "/", form, {"Content-Type": "application/x-www-form-urlencoded"},
            service="iam"))
        # 409: made before; 400: a build without IAM (a baseline), whose functions need none.
        if r.status not in (200, 400, 409):
            raise BenchError(f"CreateRole: {r.status} {r.body[:500]!r}")
        self._role_made = True

    def create_function(self, name: str, runtime: str, handler: str, code_zip: bytes,
                        memory: int, timeout: int = 30, env: dict | None = None):
        self.ensure_role()
        doc = {"FunctionName": name, "Runtime": runtime, "Handler": handler, "Role": ROLE,
               "Code": {"ZipFile": base64.b64encode(code_zip).decode()},
               "MemorySize": memory, "Timeout": timeout}
        if env:
            doc["Environment"] = {"Variables": env}
        r = self.call("POST", "/2015-03-31/functions", doc)
        if r.status != 201:
            raise BenchError(f"CreateFunction {name}: {r.status} {r.body[:500]!r}")

    def wait_active(self, names: list[str], timeout: float = 120.0):
        deadline = time.monotonic() + timeout
        for name in names:
            while True:
                r = self.call("GET", f"/2015-03-31/functions/{name}/configuration")
                state = r.json().get("State") if r.status == 200 else None
                if state == "Active":
                    break
                if state == "Failed" or time.monotonic() > deadline:
                    raise BenchError(f"function {name} did not become Active ({r.body[:300]!r})")
                time.sleep(0.01)


@dataclass
class Invoked:
    status: int
    seconds: float  # client wall time, send to last body byte
    body: bytes
    function_error: str | None
    log: str = ""
    report: dict = field(default_factory=dict)


REPORT_FIELDS = {"Duration": "duration_ms", "Init Duration": "init_ms",
                 "Max Memory Used": "max_memory_mb"}


def parse_report(log: str) -> dict:
    out = {}
    for line in log.splitlines():
        if line.startswith("REPORT "):
            for part in line.split("\t"):
                k, _, v = part.partition(":")
                k = k.strip()
                if k in REPORT_FIELDS:
                    out[REPORT_FIELDS[k]] = float(v.strip().split()[0])
    return out


def timed_invoke(conn: RawConn, request: bytes) -> Invoked:
    t0 = time.perf_counter()
    resp = conn.request(request)
    t1 = time.perf_counter()
    log = ""
    if "x-amz-log-result" in resp.headers:
        log = base64.b64decode(resp.headers["x-amz-log-result"]).decode(errors="replace")
    return Invoked(resp.status, t1 - t0, resp.body, resp.headers.get("x-amz-function-error"),
                   log, parse_report(log))
