"""Execution environments are sandboxes: a function that probes from inside
(fixtures/isolation/probe.py) reports what it could do, and every escape must fail.
Plus the host-side view: cgroup limits while an environment lives, and nothing left
behind (cgroups, processes, mounts) once environments are reaped."""

from __future__ import annotations

import os
import re
import socket
import threading
import time
import uuid
from pathlib import Path

from helpers import (STRATUS_BIN, cgroup_dirs, cgroup_v2_root, create_function,
                     environment_cgroups, health, invoke, make_zip, sha256_hex,
                     update_configuration, wait_until)

FIXTURES = Path(__file__).parent / "fixtures"
PROBE = {"probe.py": (FIXTURES / "isolation" / "probe.py").read_text()}
FUNCTION_UID = 993
FUNCTION_GID = 990
# Each environment runs as its own host uid: the server's `sandbox_uid` (default 100993)
# plus its slot, one of 16384.
HOST_SANDBOX_UIDS = range(100993, 100993 + 16384)


def make_probe(lam, name="probe", **kw):
    kw.setdefault("Timeout", 30)
    create_function(lam, name, PROBE, runtime="python3.11", handler="probe.handler", **kw)


def probe(lam, op, name="probe", **event):
    inv = invoke(lam, name, {"op": op, **event})
    assert inv.status == 200
    assert inv.function_error is None, f"probe {op} failed: {inv.raw[:2000]!r}"
    return inv.payload


# --- what the function sees ----------------------------------------------------------------


def test_cannot_see_host_processes(exec_server, exec_lam):
    make_probe(exec_lam)
    seen = probe(exec_lam, "processes", host_pid=exec_server.proc.pid)
    assert len(seen["pids"]) <= 3, f"too many processes visible: {seen['cmdlines']}"
    assert seen["host_pid_visible"] is False, "the server's PID is visible inside"
    assert exec_server.proc.pid not in seen["pids"]
    for pid, cmd in seen["cmdlines"].items():
        assert "stratus server" not in cmd and "--data-dir" not in cmd, (pid, cmd)
        # The sandbox's init is a copy of the helper: its command line must not say where
        # the stratus binary lives on the host.
        assert str(Path(STRATUS_BIN).parent) not in cmd, (pid, cmd)


def test_cannot_touch_the_sandbox_init(exec_lam):
    make_probe(exec_lam)
    got = probe(exec_lam, "init_process")
    assert got["kill"] == "EPERM", got
    for name in ("environ", "mem", "maps", "root", "fd", "cwd"):
        assert got[name] in ("EACCES", "EPERM"), f"/proc/1/{name}: {got[name]}"
    assert probe(exec_lam, "alive")["ok"]


def test_identity_capabilities_and_minimal_system(exec_lam):
    make_probe(exec_lam)
    me = probe(exec_lam, "identity")
    assert me["uid"] == FUNCTION_UID and me["euid"] == FUNCTION_UID, me
    assert me["gid"] == FUNCTION_GID and me["egid"] == FUNCTION_GID, me
    assert me["cap_eff"] == "0000000000000000", f"CapEff {me['cap_eff']}"
    assert me["cap_prm"] == "0000000000000000", f"CapPrm {me['cap_prm']}"
    assert me["cap_amb"] in (None, "0000000000000000"), f"CapAmb {me['cap_amb']}"
    assert me["seccomp"] == "2", f"no seccomp filter (Seccomp: {me['seccomp']})"
    assert me["hostname"] == "stratus" and me["nodename"] == "stratus"
    assert me["shadow_exists"] is False
    assert "shadow" not in me["etc"] and "gshadow" not in me["etc"]
    for f in ("passwd", "group", "hosts", "resolv.conf"):
        assert f in me["etc"], f"/etc/{f} missing: {me['etc']}"
    # No host accounts beyond what a minimal /etc/passwd needs.
    assert me["passwd"] is not None and "root:" in me["passwd"]
    for required in ("null", "zero", "full", "random", "urandom", "shm"):
        assert required in me["dev"], f"/dev/{required} missing: {me['dev']}"
    allowed = {"null", "zero", "full", "random", "urandom", "shm", "fd", "stdin", "stdout",
               "stderr", "pts", "ptmx", "tty", "mqueue", "core"}
    assert set(me["dev"]) <= allowed, f"unexpected devices: {set(me['dev']) - allowed}"
    assert me["task"] == ["probe.py"], me["task"]
    assert me["cwd"] == "/var/task"


def test_cannot_read_the_data_dir_or_other_functions_code(exec_server, exec_lam):
    other_files = {"other.py": "SECRET = 'other function code'\n"
                               "def h(e, c):\n    return SECRET\n"}
    create_function(exec_lam, "other", other_files, runtime="python3.11", handler="other.h")
    assert invoke(exec_lam, "other").payload == "other function code"
    other_code = exec_server.data_dir / "code" / sha256_hex(make_zip(other_files))
    assert other_code.is_dir(), (f"the test's idea of the code path is wrong: "
                                 f"{sorted(os.listdir(exec_server.data_dir / 'code'))}")
    data = exec_server.data_dir
    make_probe(exec_lam)
    host_tmp = Path(f"/tmp/stratus-e2e-host-{uuid.uuid4().hex}")
    host_tmp.write_text("the host's /tmp")
    try:
        paths = [str(data), str(data / "credentials"), str(other_code),
                 str(other_code / "other.py"), str(data / "code"), str(data / "logs"),
                 str(host_tmp), "/root", "/sys/fs/cgroup", "/run", "/var/lib"]
        seen = probe(exec_lam, "paths", paths=paths)
    finally:
        host_tmp.unlink()
    for p in paths:
        assert not seen[p]["exists"] and not seen[p]["lexists"], f"{p} is visible: {seen[p]}"
        assert "listing" not in seen[p] and "read" not in seen[p], seen[p]


def test_only_tmp_is_writable(exec_lam):
    make_probe(exec_lam)
    dirs = ["/var/task", "/etc", "/usr", "/", "/var/runtime", "/var", "/opt", "/root", "/home",
            "/proc/self", "/tmp"]
    got = probe(exec_lam, "writes", dirs=dirs)
    assert got["/tmp"] == "ok", got
    for d in dirs[:-1]:
        assert got[d] in ("EROFS", "EACCES", "EPERM", "ENOENT"), f"{d}: {got[d]}"
    for d in ("/var/task", "/etc", "/usr", "/"):
        assert got[d] in ("EROFS", "EACCES"), f"{d}: {got[d]}"


def test_tmp_is_capped_at_ephemeral_storage(exec_lam):
    make_probe(exec_lam, MemorySize=1024, EphemeralStorage={"Size": 512})
    got = probe(exec_lam, "fill_tmp", max_mb=1024)
    mib = 1024 * 1024
    assert got["size"] == 512 * mib, f"/tmp size {got['size'] / mib:.1f} MiB"
    assert got["errno"] == "ENOSPC", got
    assert 500 * mib <= got["written"] <= 512 * mib, f"wrote {got['written'] / mib:.1f} MiB"
    # The environment survives a full /tmp (the probe cleaned up after itself).
    assert probe(exec_lam, "alive")["ok"]


def test_tmp_size_follows_the_configuration(exec_lam):
    make_probe(exec_lam, EphemeralStorage={"Size": 1024})
    got = probe(exec_lam, "fill_tmp", max_mb=0)
    assert got["size"] == 1024 * 1024 * 1024, got


def test_privileged_system_calls_are_denied(exec_lam):
    make_probe(exec_lam)
    got = probe(exec_lam, "syscalls")
    assert got.pop("fork_status") == 7, "a plain fork must work"
    assert got.pop("clone3") == {"result": -1, "errno": "ENOSYS"}
    wrong = {name: r for name, r in got.items() if r != {"result": -1, "errno": "EPERM"}}
    assert not wrong, f"expected EPERM from each, got {wrong}"


def test_host_loopback_services_are_unreachable(exec_server, exec_lam):
    port = int(exec_server.url.rsplit(":", 1)[1])
    assert port != 9001
    # Another service on the host's loopback.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    other_port = listener.getsockname()[1]
    try:
        make_probe(exec_lam)
        got = probe(exec_lam, "connect", targets=[
            {"host": "127.0.0.1", "port": port},
            {"host": "127.0.0.1", "port": other_port},
            # The environment's own listener: a non-runtime path goes to the Stratus API,
            # which wants a signature.
            {"host": "127.0.0.1", "port": 9001, "path": "/2015-03-31/functions/"},
        ])
    finally:
        listener.close()
    server, other, own = got["results"]
    assert server["connected"] is False and server["errno"] == "ECONNREFUSED", server
    assert other["connected"] is False and other["errno"] == "ECONNREFUSED", other
    assert own["connected"] is True, own
    assert re.match(r"HTTP/1\.[01] 403 ", own["status_line"]), own
    # Loopback, plus the sandbox's own end of its veth pair when outside access is on (what
    # lies beyond it is not tested here).
    assert "lo" in got["interfaces"] and set(got["interfaces"]) <= {"lo", "eth0"}, got


def test_host_abstract_unix_sockets_are_unreachable(exec_lam):
    name = f"stratus-e2e-{uuid.uuid4().hex}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind("\0" + name)
    listener.listen(1)
    try:
        make_probe(exec_lam)
        got = probe(exec_lam, "unix_connect", names=[name])
    finally:
        listener.close()
    assert got[name] == "ECONNREFUSED", got


def test_pids_limit_stops_a_fork_bomb(exec_lam):
    make_probe(exec_lam, MemorySize=1024)
    before = probe(exec_lam, "alive")
    got = probe(exec_lam, "fork_bomb", limit=2000)
    assert got["errno"] == "EAGAIN", f"fork never failed (forked {got['forked']})"
    assert got["forked"] <= 1024, got
    assert got["forked"] >= 900, f"the limit is far below Lambda's 1024: {got}"
    # The same environment still answers, and so does the next invocation.
    after = probe(exec_lam, "alive")
    assert after["pid"] == before["pid"]
    assert probe(exec_lam, "fork_bomb", limit=50) == {"forked": 50, "errno": None}


def test_tmp_and_shm_are_private_to_each_environment(exec_lam):
    make_probe(exec_lam, "a")
    make_probe(exec_lam, "b")
    for path in ("/tmp/marker", "/dev/shm/marker"):
        assert probe(exec_lam, "touch", name="a", path=path, text="a-secret") == {"before": None}
    seen = probe(exec_lam, "paths", name="b", paths=["/tmp/marker", "/dev/shm/marker"])
    assert not seen["/tmp/marker"]["exists"], "another function's /tmp is visible"
    assert not seen["/dev/shm/marker"]["exists"], "another function's /dev/shm is visible"
    # The same environment keeps its /tmp between invocations...
    assert probe(exec_lam, "touch", name="a", path="/tmp/marker", text="again") == \
        {"before": "a-secret"}
    # ...and a new environment of the same function starts with an empty one.
    update_configuration(exec_lam, "a", Environment={"Variables": {"NEW": "environment"}})
    assert probe(exec_lam, "touch", name="a", path="/tmp/marker", text="x") == {"before": None}


def test_cpu_share_follows_memory(exec_lam):
    make_probe(exec_lam, "small", MemorySize=128)
    make_probe(exec_lam, "large", MemorySize=1769)
    probe(exec_lam, "alive", name="small")  # init (which gets a full CPU) is over
    probe(exec_lam, "alive", name="large")
    small = probe(exec_lam, "cpu_burn", name="small", seconds=1.5)
    large = probe(exec_lam, "cpu_burn", name="large", seconds=1.5)
    # 128 MB buys 128/1769 = 7 % of a CPU; 1,769 MB a whole one (less whatever else the
    # host is busy with).
    assert small["share"] < 0.15, f"128 MB got {small['share']:.0%} of a CPU"
    assert large["share"] > 0.25, f"1769 MB got only {large['share']:.0%} of a CPU"
    assert large["share"] > 2.5 * small["share"], (small, large)


# --- the host's view ---------------------------------------------------------------------


def _read(p: Path) -> str:
    return p.read_text().strip()


def test_cgroup_limits_of_a_live_environment(exec_server, exec_lam):
    make_probe(exec_lam, MemorySize=512)
    probe(exec_lam, "alive")
    envs = environment_cgroups(exec_server.cgroup_parent)
    mb = 1024 * 1024
    expected_quota = 512 * 1000 // 1769 * 100  # memory/1769 of a CPU, per 100 ms period
    v2 = cgroup_v2_root()
    if v2 is not None:
        assert len(envs) == 1, envs
        env = envs[0]
        assert int(_read(env / "memory.max")) == 512 * mb
        assert _read(env / "memory.swap.max") == "0"
        assert int(_read(env / "pids.max")) == 1024
        quota, period = _read(env / "cpu.max").split()
        assert abs(int(quota) * 100000 // int(period) - expected_quota) <= 100
    else:
        names = {p.name for p in envs}
        assert len(names) == 1, envs
        (env_id,) = names
        memory, pids, cpu = (d / env_id for d in cgroup_dirs(exec_server.cgroup_parent))
        assert int(_read(memory / "memory.limit_in_bytes")) == 512 * mb
        memsw = memory / "memory.memsw.limit_in_bytes"
        if memsw.exists():
            assert int(_read(memsw)) == 512 * mb, "swap is allowed"
        assert int(_read(pids / "pids.max")) == 1024
        period = int(_read(cpu / "cpu.cfs_period_us"))
        quota = int(_read(cpu / "cpu.cfs_quota_us"))
        assert abs(quota * 100000 // period - expected_quota) <= 100, (quota, period)


def _mount_count() -> int:
    with open("/proc/self/mountinfo") as f:
        return sum(1 for _ in f)


def _memory_cgroup(pid: str) -> str | None:
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            for line in f:
                _, ctrls, path = line.rstrip("\n").split(":", 2)
                if "memory" in ctrls.split(",") or ctrls == "":
                    return path
    except OSError:
        return None
    return None


def _sandbox_processes(parent: str) -> list[str]:
    """Host processes running as the sandbox uid that are not some other server's (concurrent
    servers on the host keep theirs under their own `stratus*` cgroup parents)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/status") as f:
                uid_line = next(line for line in f if line.startswith("Uid:"))
        except (OSError, StopIteration):
            continue
        if int(uid_line.split()[1]) not in HOST_SANDBOX_UIDS:
            continue
        cg = _memory_cgroup(pid) or ""
        first = cg.strip("/").split("/", 1)[0]
        if first.startswith("stratus") and first != parent:
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            cmd = "?"
        if cmd.startswith("stratus sandbox-helper"):
            continue  # a blank sandbox's function process, waiting for a function to run
        if "/pool-" in cg:
            continue  # a blank sandbox's zygote (a runtime started ahead), where v1 pools them
        if not first.startswith("stratus"):
            try:
                if b"_STRATUS_ZYGOTE_FD=" in Path(f"/proc/{pid}/environ").read_bytes():
                    continue  # the same, with cgroup v2 (blanks sit in no cgroup of ours)
            except OSError:
                pass
        found.append(f"{pid} {cg} {cmd}")
    return found


def test_nothing_leaks_after_environments_are_reaped(exec_server_factory):
    mounts_before = _mount_count()
    server = exec_server_factory(keep_alive=1)
    lam = server.client("lambda")
    parent = server.cgroup_parent
    make_probe(lam, "p1")
    make_probe(lam, "p2", MemorySize=256)
    create_function(lam, "node", {"app.js": (FIXTURES / "invoke" / "app.js").read_text()},
                    runtime="nodejs20.x", handler="app.sleep", Timeout=30)
    create_function(lam, "custom", {"bootstrap": (FIXTURES / "provided_bootstrap.py").read_text(),
                                    "app.py": (FIXTURES / "invoke" / "app.py").read_text()},
                    runtime="provided.al2023", handler="app.sleep", Timeout=30)
    # A process the function leaves behind must go with its environment.
    probe(lam, "spawn_daemon", name="p1", seconds=600)
    # (The check below sees the environment's processes while it lives: the runtime and
    # the daemon at least.)
    assert len(_sandbox_processes(parent)) >= 2, _sandbox_processes(parent)
    for _ in range(3):
        probe(lam, "alive", name="p1")
        probe(lam, "alive", name="p2")
        assert invoke(lam, "node", {"seconds": 0}).function_error is None
        assert invoke(lam, "custom", {"seconds": 0}).function_error is None
    # Some in parallel, so that several environments of one function live at once.
    errors: list = []
    peak = [0]

    def run(name, event):
        try:
            inv = invoke(server.client("lambda"), name, event)
            if inv.function_error:
                errors.append((name, inv.raw))
        except Exception as e:  # noqa: BLE001
            errors.append((name, repr(e)))

    threads = [threading.Thread(target=run, args=(n, e)) for n, e in [
        ("node", {"seconds": 1}), ("node", {"seconds": 1}), ("custom", {"seconds": 1}),
        ("custom", {"seconds": 1}), ("p1", {"op": "fork_bomb", "limit": 20}),
        ("p2", {"op": "fill_tmp", "max_mb": 20}), ("p1", {"op": "alive"}),
        ("custom", {"seconds": 1})]]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        peak[0] = max(peak[0], health(server)["services"]["lambda"]["environments"])
        time.sleep(0.05)
    for t in threads:
        t.join()
    assert not errors, errors
    assert peak[0] >= 4, f"expected several live environments, saw at most {peak[0]}"

    wait_until(lambda: health(server)["services"]["lambda"]["environments"] == 0, timeout=30, interval=0.2,
               what="every environment reaped after the 1 s keep-alive")
    wait_until(lambda: not environment_cgroups(parent), timeout=5,
               what=f"no environment cgroups left (still: {environment_cgroups(parent)})")
    assert _sandbox_processes(parent) == []
    assert _mount_count() == mounts_before, "the host's mount table changed"
    # The server still works afterwards.
    assert probe(lam, "alive", name="p1")["ok"]
