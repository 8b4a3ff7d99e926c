"""Fixtures that run the real `stratus` binary.

`server` starts `stratus server --listen 127.0.0.1:0 --data-dir <tmp>` and yields a
`StratusServer` handle; `server_factory` starts more (or differently configured) servers.
Readiness is read from the server's stdout line and confirmed on `/_stratus/health`, each with a
deadline; nothing waits by sleeping a fixed time. The server's stderr goes to a log file that is
printed when a test fails.
"""

from __future__ import annotations

import configparser
import json
import queue
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import boto3
import botocore.config
import pytest

from helpers import STRATUS_BIN, cgroup_dirs, clean_env, ensure_role, wait_until

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
LISTEN_PREFIX = "stratus listening on "
CREDENTIALS_PREFIX = "credentials: export AWS_SHARED_CREDENTIALS_FILE="

class StratusServer:
    """A running (or stopped) `stratus server` on a fixed data directory."""

    def __init__(self, data_dir: Path, log_dir: Path, args: list[str] | None = None,
                 env: dict[str, str] | None = None, region: str = "us-east-1"):
        self.data_dir = Path(data_dir)
        self.log_dir = Path(log_dir)
        self.args = list(args or [])
        self.env = dict(env or {})
        self.region = region
        self.proc: subprocess.Popen | None = None
        self.url: str | None = None
        self.credentials_file: Path | None = None
        self.credentials: dict[str, str] | None = None
        self.stdout_lines: list[str] = []
        self.starts = 0
        self.log_paths: list[Path] = []

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> "StratusServer":
        assert self.proc is None or self.proc.poll() is not None, "server already running"
        if not STRATUS_BIN.exists():
            pytest.fail(f"stratus binary not found at {STRATUS_BIN}: run `cargo build -p stratus` "
                        "or set STRATUS_BIN")
        self.starts += 1
        log_path = self.log_dir / f"stratus-stderr-{self.starts}.log"
        self.log_paths.append(log_path)
        log = open(log_path, "wb")
        cmd = [str(STRATUS_BIN), "server", "--listen", "127.0.0.1:0",
               "--data-dir", str(self.data_dir), *self.args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log,
                                     stdin=subprocess.DEVNULL, env=clean_env(self.env))
        log.close()
        lines: queue.Queue = queue.Queue()

        def pump(stream, sink):
            for raw in iter(stream.readline, b""):
                sink.put(raw.decode(errors="replace").rstrip("\n"))
            sink.put(None)

        self._pump = threading.Thread(target=pump, args=(self.proc.stdout, lines), daemon=True)
        self._pump.start()
        self.stdout_lines = []
        self.url = None
        self.credentials_file = None
        deadline = time.monotonic() + START_TIMEOUT
        while self.url is None or self.credentials_file is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._fail_start("no readiness lines on stdout before the deadline")
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self.proc.wait(timeout=STOP_TIMEOUT)
                self._fail_start(f"server exited with {self.proc.returncode} before it was ready")
            self.stdout_lines.append(line)
            if line.startswith(LISTEN_PREFIX):
                self.url = line[len(LISTEN_PREFIX):].strip()
            elif line.startswith(CREDENTIALS_PREFIX):
                self.credentials_file = Path(line[len(CREDENTIALS_PREFIX):].strip())
        self._wait_healthy(deadline)
        self.credentials = read_credentials(self.credentials_file)
        # The execution role the tests' functions name (helpers.ROLE), as AWS requires one
        # to exist before a function can use it.
        ensure_role(self.client("iam"))
        return self

    def _fail_start(self, why: str):
        self._stop(signal.SIGKILL)
        pytest.fail(f"stratus did not start: {why}\nstdout: {self.stdout_lines}\n"
                    f"stderr:\n{self.stderr_text()}")

    def _wait_healthy(self, deadline: float):
        last = None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/_stratus/health", timeout=5) as r:
                    doc = json.loads(r.read())
                    if r.status == 200 and doc.get("status") == "ready":
                        return doc
                    last = doc
            except (urllib.error.URLError, ConnectionError, ValueError) as e:
                last = e
            time.sleep(0.02)
        self._fail_start(f"/_stratus/health never said ready (last: {last!r})")

    def _stop(self, sig) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT)
        self._close_stdout()
        return self.proc.returncode

    def _close_stdout(self):
        # Closing waits for the reader thread's read, which ends only once every process
        # holding the pipe's write end has gone: never close under a reader still reading
        # (a leftover holding the pipe is for the tests of ends to find, not a reason to hang).
        pump = getattr(self, "_pump", None)
        if pump is not None:
            pump.join(timeout=STOP_TIMEOUT)
            if pump.is_alive():
                return
        if self.proc.stdout:
            self.proc.stdout.close()

    def kill9(self) -> int | None:
        """SIGKILL: no chance to clean up."""
        return self._stop(signal.SIGKILL)

    def terminate(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM and wait for the exit; returns the exit code (fails the test if it hangs)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"stratus did not exit within {timeout}s of SIGTERM")
        self._close_stdout()
        return code

    def restart(self) -> "StratusServer":
        """Stops the server if it still runs (SIGTERM) and starts it again on the same data
        directory. The port changes (it listens on port 0), so make new clients afterwards."""
        if self.proc is not None and self.proc.poll() is None:
            self.terminate()
        return self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- clients ---------------------------------------------------------------------------

    def client(self, service: str = "lambda", *, region: str | None = None,
               access_key: str | None = None, secret_key: str | None = None, **config):
        creds = self.credentials or {}
        session = boto3.session.Session(
            aws_access_key_id=access_key or creds["aws_access_key_id"],
            aws_secret_access_key=secret_key or creds["aws_secret_access_key"],
            region_name=region or self.region,
        )
        cfg = botocore.config.Config(retries={"max_attempts": 1}, connect_timeout=10,
                                     read_timeout=120, **config)
        return session.client(service, endpoint_url=self.url, config=cfg)

    def stderr_text(self) -> str:
        out = []
        for p in self.log_paths:
            try:
                out.append(f"--- {p.name} ---\n" + p.read_text(errors="replace"))
            except OSError:
                pass
        return "\n".join(out)

    def blob_names(self) -> set[str]:
        """File names under `<data-dir>/blobs/??/`."""
        return {p.name for p in (self.data_dir / "blobs").glob("??/*") if p.is_file()}


def read_credentials(path: Path) -> dict[str, str]:
    parser = configparser.ConfigParser()
    with open(path) as f:
        parser.read_file(f)
    section = parser["default"]
    return {"aws_access_key_id": section["aws_access_key_id"],
            "aws_secret_access_key": section["aws_secret_access_key"]}


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep


def _dump_on_failure(request, servers):
    failed = any(getattr(request.node, f"rep_{w}", None) is not None
                 and getattr(request.node, f"rep_{w}").failed for w in ("setup", "call"))
    if failed:
        for s in servers:
            print(f"\n===== stratus stderr (data dir {s.data_dir}) =====\n{s.stderr_text()}")


@pytest.fixture
def server_factory(tmp_path, request):
    """Starts servers: `server_factory(args=[...], env={...}, data_dir=..., region=...)`."""
    servers: list[StratusServer] = []

    def make(args=None, env=None, data_dir=None, region="us-east-1", start=True):
        n = len(servers)
        d = Path(data_dir) if data_dir else tmp_path / f"data{n}"
        logs = tmp_path / f"logs{n}"
        logs.mkdir(parents=True, exist_ok=True)
        s = StratusServer(d, logs, args=args, env=env, region=region)
        servers.append(s)
        return s.start() if start else s

    yield make
    for s in servers:
        s.kill9()
    _dump_on_failure(request, servers)


@pytest.fixture
def server(server_factory) -> StratusServer:
    return server_factory()


@pytest.fixture
def lam(server):
    """A boto3 Lambda client for `server`."""
    return server.client("lambda")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: builds or downloads a runtime client first (minutes when not cached)")


@pytest.fixture
def exec_server_factory(server_factory, tmp_path):
    """Starts servers that run functions, each with its own cgroup parent
    (`stratus-e2e-<uuid>`, set through a `--config` TOML file) so concurrent servers on the
    host never share environments' cgroups: `exec_server_factory(args=[...], keep_alive=N)`.
    The handle's `cgroup_parent` names it. At the end the servers are killed, their
    environments' cgroups are awaited (the sandbox helper removes them when the server goes)
    and the parent cgroups are removed."""
    started: list[tuple[StratusServer, str]] = []

    def make(args=None, env=None, keep_alive: int | None = None, extra_config: str = "",
             **kw) -> StratusServer:
        parent = f"stratus-e2e-{uuid.uuid4().hex[:12]}"
        cfg = tmp_path / f"{parent}.toml"
        cfg.write_text(f'cgroup_parent = "{parent}"\n{extra_config}')
        full = ["--config", str(cfg), *(args or [])]
        if keep_alive is not None:
            full += ["--keep-alive", str(keep_alive)]
        s = server_factory(args=full, env=env, **kw)
        s.cgroup_parent = parent
        started.append((s, parent))
        return s

    yield make
    for s, _ in started:
        s.kill9()
    for _, parent in started:
        def children_gone(parent=parent):
            return all(not any(p.is_dir() for p in d.iterdir())
                       for d in cgroup_dirs(parent) if d.exists())
        try:
            wait_until(children_gone, timeout=10, what=f"environment cgroups under {parent}")
        finally:
            for d in cgroup_dirs(parent):
                try:
                    d.rmdir()
                except OSError:
                    pass


@pytest.fixture
def exec_server(exec_server_factory) -> StratusServer:
    """A server that runs functions, with its own cgroup parent."""
    return exec_server_factory()


@pytest.fixture
def exec_lam(exec_server):
    """A boto3 Lambda client for `exec_server`."""
    return exec_server.client("lambda")
