"""The floor and the peers: the same function process started without Stratus.

Every launcher starts the function's runtime process once per iteration and serves it one
invocation through `serve_one`, a minimal Lambda Runtime API written for this harness (one
event, `{}`, then the response), recording two instants after `t0` (just before the launch
call):

* `next`: the runtime's first `GET /2018-06-01/runtime/invocation/next` (init is over);
* `response`: its `POST .../response` (one invocation served).

Launchers (teardown is outside the timed region):

* `floor`     — `posix_spawn` of the runtime process itself, Runtime API on the host's
                loopback.
* `unshare`   — `unshare --user --map-root-user --pid --mount --uts --ipc --net --fork
                --kill-child fdlisten FD bootstrap`: a clone into fresh namespaces. A fresh
                network namespace cannot reach the host's loopback, so `fdlisten` (bench/c)
                listens on 127.0.0.1:9001 inside it and passes the listener out over a Unix
                socket — what Stratus's helper does for every sandbox.
* `runc`      — `runc run` of an OCI bundle whose rootfs holds only `bootstrap` and
                `fdlisten` (both static), read-only root, runc's default namespaces.
* `podman`    — `podman run --rm --network none` of an image `podman import`ed from a
                tarball of that same rootfs (no registry).
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import tarfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

EVENT = b"{}"
RUNTIME_PREFIX = "/2018-06-01/runtime"


class PeerError(RuntimeError):
    pass


def lambda_env(name: str, api: str, memory: int = 1769) -> dict[str, str]:
    """The variables the Rust `lambda_runtime` crate needs (a subset of what Stratus sets)."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2024/01/01/[$LATEST]bench",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_RUNTIME_API": api,
        "LAMBDA_TASK_ROOT": "/var/task",
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
    }


# --- the fake Runtime API ----------------------------------------------------------------


def _event_response(request_id: str) -> bytes:
    deadline = int(time.time() * 1000) + 30_000
    head = (
        "HTTP/1.1 200 OK\r\n"
        "Content-Type: application/json\r\n"
        f"Lambda-Runtime-Aws-Request-Id: {request_id}\r\n"
        f"Lambda-Runtime-Deadline-Ms: {deadline}\r\n"
        "Lambda-Runtime-Invoked-Function-Arn: "
        "arn:aws:lambda:us-east-1:000000000000:function:bench\r\n"
        "Lambda-Runtime-Trace-Id: Root=1-00000000-000000000000000000000000;Sampled=0\r\n"
        f"Content-Length: {len(EVENT)}\r\n\r\n")
    return head.encode() + EVENT


ACCEPTED = b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n" \
           b'{"status":"OK"}\n'


def serve_one(listener: socket.socket, alive, timeout: float = 30.0) -> tuple[float, float]:
    """Serves one invocation on `listener`; returns perf_counter() instants of the first
    `/next` and of the response. `alive()` is polled so a runtime that dies fails fast."""
    listener.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, None)
    bufs: dict[socket.socket, bytes] = {}
    request_id = str(uuid.uuid4())
    t_next = t_resp = None
    deadline = time.monotonic() + timeout
    try:
        while t_resp is None:
            if time.monotonic() > deadline:
                raise PeerError("the runtime did not complete one invocation in time")
            events = sel.select(0.05)
            if not events and not alive():
                raise PeerError("the runtime process exited before answering")
            for key, _ in events:
                if key.data is None:
                    try:
                        conn, _ = listener.accept()
                    except BlockingIOError:
                        continue
                    conn.setblocking(False)
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    sel.register(conn, selectors.EVENT_READ, "conn")
                    bufs[conn] = b""
                    continue
                conn = key.fileobj
                try:
                    chunk = conn.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except ConnectionError:
                    chunk = b""
                if not chunk:
                    sel.unregister(conn)
                    conn.close()
                    bufs.pop(conn, None)
                    continue
                bufs[conn] += chunk
                while b"\r\n\r\n" in bufs[conn]:
                    head, rest = bufs[conn].split(b"\r\n\r\n", 1)
                    lines = head.decode("latin-1").split("\r\n")
                    method, path = lines[0].split(" ")[:2]
                    length = 0
                    for line in lines[1:]:
                        k, _, v = line.partition(":")
                        if k.strip().lower() == "content-length":
                            length = int(v.strip())
                    if len(rest) < length:
                        break
                    body, bufs[conn] = rest[:length], rest[length:]
                    now = time.perf_counter()
                    if method == "GET" and path.endswith("/invocation/next"):
                        if t_next is None:
                            t_next = now
                            conn.setblocking(True)
                            conn.sendall(_event_response(request_id))
                            conn.setblocking(False)
                        # A second /next waits forever: the process is killed after.
                    elif method == "POST" and path.endswith(f"/{request_id}/response"):
                        t_resp = now
                        conn.setblocking(True)
                        conn.sendall(ACCEPTED)
                        conn.setblocking(False)
                    else:
                        raise PeerError(f"unexpected runtime request {method} {path}: "
                                        f"{body[:300]!r}")
        return t_next, t_resp
    finally:
        for c in list(bufs):
            try:
                c.close()
            except OSError:
                pass
        sel.close()


def _recv_listener(chan: socket.socket, alive, timeout: float = 30.0) -> socket.socket:
    """The listener `fdlisten` sends from inside the new network namespace."""
    deadline = time.monotonic() + timeout
    chan.settimeout(0.05)
    while True:
        try:
            _, fds, _, _ = socket.recv_fds(chan, 16, 1)
            if fds:
                return socket.socket(fileno=fds[0])
            raise PeerError("fdlisten closed its channel without sending a listener")
        except (socket.timeout, TimeoutError):
            pass
        if not alive():
            raise PeerError("the launcher exited before fdlisten sent its listener")
        if time.monotonic() > deadline:
            raise PeerError("no listener from fdlisten in time")


# --- launchers --------------------------------------------------------------------------


@dataclass
class Sample:
    next_ms: float
    response_ms: float


def _spawn(argv: list[str], env: dict[str, str], log_fd: int, dup3: int | None = None) -> int:
    actions = [(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
               (os.POSIX_SPAWN_DUP2, log_fd, 1), (os.POSIX_SPAWN_DUP2, log_fd, 2)]
    if dup3 is not None:
        actions.append((os.POSIX_SPAWN_DUP2, dup3, 3))
    return os.posix_spawn(argv[0], argv, env, file_actions=actions)


def _alive(pid: int):
    state = {"done": False}

    def check() -> bool:
        if state["done"]:
            return False
        try:
            r, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            r = pid
        if r == pid:
            state["done"] = True
            return False
        return True

    check.state = state
    return check


def _reap(pid: int, alive, timeout: float = 20.0):
    if alive.state["done"]:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            r, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if r == pid:
            return
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


class Launcher:
    name = "?"

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.log_path = workdir / f"{self.name}.log"
        self.log_fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def once(self) -> Sample:
        raise NotImplementedError

    def close(self):
        os.close(self.log_fd)

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-1500:]
        except OSError:
            return ""


class Floor(Launcher):
    """posix_spawn of the runtime process, Runtime API on the host loopback."""

    name = "floor"

    def __init__(self, workdir: Path, argv: list[str], env: dict[str, str], label: str):
        self.name = f"floor-{label}"
        super().__init__(workdir)
        self.argv, self.env = argv, env

    def once(self) -> Sample:
        lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lst.bind(("127.0.0.1", 0))
        lst.listen(64)
        env = dict(self.env, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{lst.getsockname()[1]}")
        pid = alive = None
        try:
            t0 = time.perf_counter()
            pid = _spawn(self.argv, env, self.log_fd)
            alive = _alive(pid)
            t_next, t_resp = serve_one(lst, alive)
            return Sample((t_next - t0) * 1e3, (t_resp - t0) * 1e3)
        finally:
            lst.close()
            if pid is not None:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                _reap(pid, alive or _alive(pid))


class _ChannelLauncher(Launcher):
    """Launchers whose runtime lives in its own network namespace (fdlisten hand-off)."""

    def argv(self, fd: int, ident: str) -> list[str]:
        raise NotImplementedError

    def teardown(self, pid: int, alive, ident: str):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _reap(pid, alive)

    fixed_fd3 = False

    def spawn_env(self) -> dict[str, str]:
        return dict(os.environ)

    def once(self) -> Sample:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        if child.fileno() == 3:  # posix_spawn's dup2(3, 3) would keep close-on-exec
            child = socket.socket(fileno=os.dup(child.detach()))
        fd = 3 if self.fixed_fd3 else child.fileno()
        if not self.fixed_fd3:
            os.set_inheritable(child.fileno(), True)
        ident = f"sb{uuid.uuid4().hex[:12]}"
        argv = self.argv(fd, ident)
        env = self.spawn_env()
        pid = lst = alive = None
        try:
            t0 = time.perf_counter()
            pid = _spawn(argv, env, self.log_fd, dup3=child.fileno() if self.fixed_fd3 else None)
            alive = _alive(pid)
            child.close()
            lst = _recv_listener(parent, alive)
            t_next, t_resp = serve_one(lst, alive)
            return Sample((t_next - t0) * 1e3, (t_resp - t0) * 1e3)
        finally:
            parent.close()
            child.close()
            if lst is not None:
                lst.close()
            if pid is not None:
                self.teardown(pid, alive or _alive(pid), ident)


class Unshare(_ChannelLauncher):
    name = "unshare"

    def __init__(self, workdir: Path, bootstrap: Path, fdlisten: Path):
        super().__init__(workdir)
        self.bootstrap, self.fdlisten = bootstrap, fdlisten
        self.env = lambda_env("bench", "127.0.0.1:9001")

    def spawn_env(self) -> dict[str, str]:
        return dict(self.env)

    def argv(self, fd: int, ident: str) -> list[str]:
        return [shutil.which("unshare"), "--user", "--map-root-user", "--pid", "--mount",
                "--uts", "--ipc", "--net", "--fork", "--kill-child",
                str(self.fdlisten), str(fd), str(self.bootstrap)]


def build_rootfs(root: Path, bootstrap: Path, fdlisten: Path):
    """The container root: the two static binaries and the directories runc mounts on."""
    shutil.rmtree(root, ignore_errors=True)
    for d in ("proc", "dev", "sys", "tmp", "etc", "var/task"):
        (root / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(bootstrap, root / "bootstrap")
    shutil.copy2(fdlisten, root / "fdlisten")
    (root / "etc/passwd").write_text("root:x:0:0:root:/:/bootstrap\n")
    (root / "etc/group").write_text("root:x:0:\n")


class Runc(_ChannelLauncher):
    name = "runc"
    fixed_fd3 = True

    def __init__(self, workdir: Path, bootstrap: Path, fdlisten: Path, cgroup_parent: str):
        super().__init__(workdir)
        self.runc = shutil.which("runc")
        self.state = workdir / "runc-state"
        self.bundle = workdir / "runc-bundle"
        self.bundle.mkdir(parents=True, exist_ok=True)
        build_rootfs(self.bundle / "rootfs", bootstrap, fdlisten)
        cfg_path = self.bundle / "config.json"
        cfg_path.unlink(missing_ok=True)
        subprocess.run([self.runc, "spec", "--bundle", str(self.bundle)], check=True,
                       capture_output=True)
        cfg = json.loads(cfg_path.read_text())
        env = lambda_env("bench", "127.0.0.1:9001")
        cfg["process"]["terminal"] = False
        cfg["process"]["args"] = ["/fdlisten", "3", "/bootstrap"]
        cfg["process"]["env"] = [f"{k}={v}" for k, v in env.items()]
        cfg["process"]["cwd"] = "/"
        caps = cfg["process"].setdefault("capabilities", {})
        for kind in ("bounding", "effective", "permitted"):
            caps.setdefault(kind, [])
            if "CAP_NET_ADMIN" not in caps[kind]:
                caps[kind].append("CAP_NET_ADMIN")  # fdlisten brings lo up
        cfg["root"] = {"path": "rootfs", "readonly": True}
        cfg["hostname"] = "bench"
        self.cgroup_parent = cgroup_parent
        cfg["linux"]["cgroupsPath"] = f"/{cgroup_parent}/runc"
        self.cfg = cfg
        cfg_path.write_text(json.dumps(cfg, indent=2))

    def argv(self, fd: int, ident: str) -> list[str]:
        return [self.runc, "--root", str(self.state), "run", "--preserve-fds", "1",
                "--bundle", str(self.bundle), ident]

    def teardown(self, pid: int, alive, ident: str):
        subprocess.run([self.runc, "--root", str(self.state), "kill", ident, "KILL"],
                       capture_output=True, timeout=30)
        _reap(pid, alive)
        subprocess.run([self.runc, "--root", str(self.state), "delete", "--force", ident],
                       capture_output=True, timeout=30)

    def close(self):
        super().close()
        for ctl in ("memory", "pids", "cpu", "cpuacct", "cpuset", "devices", "freezer",
                    "blkio", "hugetlb", "net_cls", "net_prio", "perf_event", "rdma", "misc",
                    "systemd", "unified"):
            base = Path("/sys/fs/cgroup") / ctl / self.cgroup_parent
            for d in (base / "runc", base):
                try:
                    d.rmdir()
                except OSError:
                    pass


class Podman(_ChannelLauncher):
    name = "podman"
    fixed_fd3 = True

    def __init__(self, workdir: Path, bootstrap: Path, fdlisten: Path, image: str):
        super().__init__(workdir)
        self.podman = shutil.which("podman")
        self.image = image
        root = workdir / "podman-rootfs"
        build_rootfs(root, bootstrap, fdlisten)
        tar = workdir / "rootfs.tar"
        with tarfile.open(tar, "w") as t:
            for p in sorted(root.rglob("*")):
                t.add(p, arcname=p.relative_to(root).as_posix(), recursive=False)
        r = subprocess.run([self.podman, "import", str(tar), image], capture_output=True,
                           text=True, timeout=300)
        if r.returncode != 0:
            raise PeerError(f"podman import failed: {r.stderr.strip()[-400:]}")
        self.env = lambda_env("bench", "127.0.0.1:9001")
        # Podman asks for RLIMIT_NOFILE/NPROC of 1048576 by default, which runc may not be
        # allowed to set here; Lambda's own limits are 1024 for both.
        self.ulimits = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]

    def argv(self, fd: int, ident: str) -> list[str]:
        envs = []
        for k, v in self.env.items():
            envs += ["-e", f"{k}={v}"]
        return [self.podman, "run", "--rm", "--pull", "never", "--network", "none",
                "--cap-add", "NET_ADMIN", "--preserve-fds", "1", "--read-only",
                *self.ulimits,
                "--name", ident, *envs, self.image, "/fdlisten", "3", "/bootstrap"]

    def teardown(self, pid: int, alive, ident: str):
        subprocess.run([self.podman, "kill", ident], capture_output=True, timeout=60)
        _reap(pid, alive, timeout=60)
        subprocess.run([self.podman, "rm", "--force", "--ignore", ident],
                       capture_output=True, timeout=60)

    def close(self):
        super().close()
        subprocess.run([self.podman, "rmi", "--force", self.image], capture_output=True,
                       timeout=120)
