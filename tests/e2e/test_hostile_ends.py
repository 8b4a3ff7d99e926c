"""Hostile functions and ends: every process of an environment is gone on time whatever it
does (fork bomb past its timeout, background work after its function is deleted), an idle
environment is frozen (no CPU between invocations, resumed on the next), nothing outlives a
server killed with `kill -9`, and the next start removes what a dead server left.

Each case checks a bystander function keeps answering correctly. Everything is polled with a
deadline; the one fixed wait is the window over which an idle environment's CPU is measured.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest

from helpers import (CGROUP_BASE, cgroup_dirs, cgroup_v2_root, create_function,
                     environment_cgroups, invoke, wait_until)

PY = "python3.11"

# A function that does harm on demand: a fork bomb, a background spinner, an endless loop.
HOSTILE = r'''
import os, time

def handler(event, context):
    what = event.get("do")
    if what == "bomb":
        while True:
            try:
                os.fork()
            except OSError:
                pass
    if what == "spin":
        if os.fork() == 0:
            while True:
                pass
        return "spinning"
    if what == "spinner_cpu":
        # Runs while the invocation does: how much CPU the spinner gets meanwhile.
        def ticks():
            total = 0
            for pid in os.listdir("/proc"):
                if pid.isdigit() and int(pid) != os.getpid():
                    try:
                        fields = open(f"/proc/{pid}/stat").read().rsplit(") ", 1)[1].split()
                        total += int(fields[11]) + int(fields[12])
                    except OSError:
                        pass
            return total
        before = ticks()
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            time.sleep(0.05)
        return ticks() - before
    if what == "loop":
        while True:
            pass
    return "ok"
'''

BYSTANDER = "def handler(event, context):\n    return {'echo': event['n'] * 2}\n"


def make(lam, name: str, **kw):
    create_function(lam, name, {"app.py": HOSTILE}, runtime=PY, handler="app.handler", **kw)


def make_bystander(lam, name: str = "bystander"):
    create_function(lam, name, {"by.py": BYSTANDER}, runtime=PY, handler="by.handler")


def bystander_answers(lam, name: str = "bystander"):
    n = int(time.monotonic() * 1000) % 10_000
    r = invoke(lam, name, {"n": n})
    assert r.function_error is None, r.raw
    assert r.payload == {"echo": n * 2}


def env_dirs(parent: str, before: set[Path] = frozenset()) -> list[Path]:
    """The environments' cgroup directories under `parent` that were not in `before`."""
    return [p for p in environment_cgroups(parent) if p not in before]


def procs(dirs) -> set[int]:
    out = set()
    for d in dirs:
        try:
            out |= {int(p) for p in (d / "cgroup.procs").read_text().split()}
        except OSError:
            pass
    return out


def alive(pid: int) -> bool:
    """Whether `pid` is a process that has not exited (a zombie has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(") ", 1)[1].split()[0] != "Z"


def open_files(pid: int) -> set[str]:
    """What process `pid`'s descriptors point at (`pipe:[n]`, paths)."""
    out = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                out.add(os.readlink(fd))
            except OSError:
                pass
    except OSError:
        pass
    return out


def cpu_ticks(pids) -> int:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total


def freezer_state(parent: str, env: str) -> bool:
    """Whether environment `env` is frozen, as the kernel reports it."""
    v2 = cgroup_v2_root()
    if v2 is not None:
        events = (v2 / parent / env / "cgroup.events").read_text()
        return "frozen 1" in events.splitlines()
    return (CGROUP_BASE / "freezer" / parent / env / "freezer.state").read_text().strip() == "FROZEN"


def has_freezer() -> bool:
    return cgroup_v2_root() is not None or (CGROUP_BASE / "freezer" / "cgroup.procs").is_file()


def the_env(parent: str, before=frozenset()) -> tuple[str, list[Path]]:
    """The one environment that appeared under `parent`: its id and directories."""
    dirs = env_dirs(parent, before)
    names = {p.name for p in dirs}
    assert len(names) == 1, dirs
    return names.pop(), dirs


def gone(dirs, pids) -> bool:
    return not any(alive(p) for p in pids) and not any(d.exists() for d in dirs)


# --- ends are final ------------------------------------------------------------------------


def test_a_fork_bomb_is_gone_right_after_its_timeout(exec_server, exec_lam):
    make_bystander(exec_lam)
    make(exec_lam, "bomb", Timeout=2)
    before = set(environment_cgroups(exec_server.cgroup_parent))
    assert invoke(exec_lam, "bomb", {"do": "ok"}).payload == "ok"
    env, dirs = the_env(exec_server.cgroup_parent, before)
    # The bomb's processes, sampled while it runs: the environment's pids limit is Lambda's.
    seen: set[int] = set()
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            seen.update(procs(dirs))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        r = invoke(exec_lam, "bomb", {"do": "bomb"})
    finally:
        stop.set()
        sampler.join()
    assert r.function_error == "Unhandled"
    assert r.payload["errorType"] == "Sandbox.Timedout", r.payload
    assert len(seen) > 10, f"the bomb forked: {len(seen)} processes seen"
    pids_max = [d / "pids.max" for d in dirs if (d / "pids.max").exists()]
    assert not pids_max or all(not p.exists() or p.read_text().strip() == "1024" for p in pids_max)
    seen |= procs(dirs)
    wait_until(lambda: gone(dirs, seen), timeout=5,
               what=f"every process of the fork bomb ({len(seen)} seen) and its cgroup")
    bystander_answers(exec_lam)
    # The function itself still works: a new environment.
    assert invoke(exec_lam, "bomb", {"do": "ok"}).payload == "ok"


@pytest.mark.skipif(not has_freezer(), reason="no cgroup freezer on this host")
def test_an_idle_environment_is_frozen_and_resumes_on_the_next_invocation(exec_server, exec_lam):
    make_bystander(exec_lam)
    make(exec_lam, "spinner", MemorySize=512)
    parent = exec_server.cgroup_parent
    before = set(environment_cgroups(parent))
    assert invoke(exec_lam, "spinner", {"do": "spin"}).payload == "spinning"
    env, dirs = the_env(parent, before)
    pids = procs(dirs)
    assert len(pids) >= 3, pids  # the init, the runtime, the spinner
    wait_until(lambda: freezer_state(parent, env), timeout=5, what="the idle environment frozen")
    first = cpu_ticks(pids)
    # The measurement window: a spinner that ran would gain about 30 ticks (512 MB buys
    # 29 % of a CPU) in it.
    time.sleep(1.0)
    assert freezer_state(parent, env)
    assert cpu_ticks(pids) == first, "an idle environment used CPU"
    assert all(alive(p) for p in pids), "frozen, not killed"
    bystander_answers(exec_lam)
    # The next invocation thaws it: the spinner runs again while the handler waits.
    r = invoke(exec_lam, "spinner", {"do": "spinner_cpu"})
    assert r.function_error is None, r.raw
    assert r.payload > 0, "the background process did not run during the invocation"
    assert all(d.exists() for d in dirs) and procs(dirs) >= pids, "the same environment served it"
    wait_until(lambda: freezer_state(parent, env), timeout=5, what="frozen again once idle")


def test_deleting_a_function_ends_its_background_work(exec_server, exec_lam):
    make_bystander(exec_lam)
    make(exec_lam, "doomed")
    parent = exec_server.cgroup_parent
    before = set(environment_cgroups(parent))
    assert invoke(exec_lam, "doomed", {"do": "spin"}).payload == "spinning"
    env, dirs = the_env(parent, before)
    pids = procs(dirs)
    assert pids and all(alive(p) for p in pids)
    exec_lam.delete_function(FunctionName="doomed")
    wait_until(lambda: gone(dirs, pids), timeout=5,
               what="the deleted function's processes and cgroup")
    bystander_answers(exec_lam)


# --- nothing outlives the server -------------------------------------------------------------


def children(pid: int) -> set[int]:
    out = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out |= {int(p) for p in (task / "children").read_text().split()}
        except OSError:
            pass
    return out


def helper_of(server) -> int:
    helpers = [p for p in children(server.proc.pid)
               if b"sandbox-helper" in Path(f"/proc/{p}/cmdline").read_bytes()]
    assert len(helpers) == 1, helpers
    return helpers[0]


def start_stuck(lam, parent: str) -> tuple[threading.Thread, list[Path], set[int]]:
    """Creates a function that loops forever and starts an invocation of it in a thread;
    returns once its environment is running: the thread, the cgroup dirs, its processes."""
    make(lam, "stuck", Timeout=300)
    before = set(environment_cgroups(parent))
    t = threading.Thread(target=lambda: _quietly(lambda: invoke(lam, "stuck", {"do": "loop"})),
                         daemon=True)
    t.start()

    def spinning():
        dirs = env_dirs(parent, before)
        pids = procs(dirs)
        if not pids:
            return None
        a = cpu_ticks(pids)
        time.sleep(0.2)
        return (dirs, pids) if cpu_ticks(pids) > a else None

    dirs, pids = wait_until(spinning, timeout=30, what="the stuck environment spinning")
    return t, dirs, pids


def _quietly(f):
    try:
        f()
    except Exception:  # the server goes away under it
        pass


def test_kill_9_of_the_server_ends_its_helper_and_a_stuck_environment(exec_server_factory):
    bystander_server = exec_server_factory()
    by = bystander_server.client("lambda")
    make_bystander(by)
    bystander_answers(by)
    server = exec_server_factory()
    lam = server.client("lambda")
    _, dirs, pids = start_stuck(lam, server.cgroup_parent)
    helper = helper_of(server)
    # Nothing the server started holds its stdout (a pipe to whoever supervises it), which
    # would keep that reader waiting for as long as a sandbox lives.
    stdout = os.readlink(f"/proc/{server.proc.pid}/fd/1")
    assert stdout.startswith("pipe:"), stdout
    holders = {p: fds for p in [helper, *pids]
               if stdout in (fds := open_files(p))}
    assert not holders, f"the server's stdout ({stdout}) is held by {holders}"
    server.kill9()
    wait_until(lambda: not alive(helper) and gone(dirs, pids), timeout=10,
               what="the helper and the stuck environment after kill -9 of the server")
    bystander_answers(by)


def _own_server(server_factory, tmp_path, parent: str, data_dir: Path):
    cfg = tmp_path / f"{parent}.toml"
    cfg.write_text(f'cgroup_parent = "{parent}"\n')
    return server_factory(args=["--config", str(cfg)], data_dir=data_dir)


def _all_parent_dirs(parent: str) -> list[Path]:
    dirs = cgroup_dirs(parent)
    if cgroup_v2_root() is None:
        dirs.append(CGROUP_BASE / "freezer" / parent)
    return dirs


@pytest.fixture
def own_parent():
    """A cgroup parent of the test's own, removed at the end (once its servers are gone)."""
    parent = f"stratus-e2e-{uuid.uuid4().hex[:12]}"
    yield parent
    dirs = _all_parent_dirs(parent)

    def empty():
        return all(not any(p.is_dir() for p in d.iterdir()) for d in dirs if d.exists())

    try:
        wait_until(empty, timeout=15, what=f"environment cgroups under {parent}")
    finally:
        for d in dirs:
            try:
                d.rmdir()
            except OSError:
                pass


def test_the_next_start_removes_what_a_dead_server_left(server_factory, tmp_path, own_parent):
    data = tmp_path / "data"
    server = _own_server(server_factory, tmp_path, own_parent, data)
    lam = server.client("lambda")
    make_bystander(lam)
    bystander_answers(lam)
    make(lam, "idle")
    before = set(environment_cgroups(own_parent))
    assert invoke(lam, "idle", {"do": "spin"}).payload == "spinning"
    env, dirs = the_env(own_parent, before)
    pids = procs(dirs)
    every_env = {p.name for p in environment_cgroups(own_parent)}
    # The whole chain dies at once, the helper first: nobody cleans up.
    helper = helper_of(server)
    os.kill(helper, signal.SIGKILL)
    server.kill9()
    wait_until(lambda: not alive(helper), what="the helper gone")
    # What is left: cgroups (with a frozen environment's processes on cgroup v1, where a
    # frozen process does not die of its parent-death signal), and the instance's
    # registration.
    assert all(d.parent.exists() for d in dirs)

    again = _own_server(server_factory, tmp_path, own_parent, data)
    wait_until(lambda: gone(dirs, pids), timeout=10, what="the dead server's environment")
    said = "removed leftovers of dead Stratus instances"
    log = wait_until(lambda: said in again.stderr_text() and again.stderr_text(), timeout=10,
                     what="the log of what was cleaned")
    cleaned = re.search(re.escape(said) + ".*", log).group(0)
    assert env in cleaned, cleaned
    left = {p.name for p in environment_cgroups(own_parent)}
    assert not (left & every_env), f"leftovers not removed: {left & every_env}"
    # The new server works, with the function its data directory kept.
    bystander_answers(again.client("lambda"))
    again.kill9()
