"""Python zygotes: once a Python function has started, the server keeps sandboxes with the
interpreter already running and the runtime loaded. A function started from one must not be
able to tell, apart from its start-up time (and /proc/self/environ, which keeps the
environment the interpreter was started with): same environment, working directory, module
path, arguments, descriptors. Functions whose variables change what Python reads only at
start-up get an interpreter of their own."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from helpers import create_function, invoke, wait_until

# Each environment runs as its own host uid: the server's `sandbox_uid` (default 100993)
# plus its slot, one of 16384.
HOST_SANDBOX_UIDS = range(100993, 100993 + 16384)
MARKER = b"_STRATUS_ZYGOTE_FD="

REPORT = '''
import ctypes, locale, os, socket, sys, time
import __main__

def handler(event, context):
    with open("/proc/self/environ", "rb") as f:
        zygote = b"_STRATUS_ZYGOTE_FD=" in f.read()
    try:  # shipped in the package's lib/, found through LD_LIBRARY_PATH
        ctypes.CDLL("libstratus_shipped.so")
        shipped = "loaded"
    except OSError as e:
        shipped = str(e)
    return {
        "shipped_library": shipped,
        "zygote": zygote,
        "env": dict(os.environ),
        "cwd": os.getcwd(),
        "path": sys.path,
        "argv": sys.argv,
        "executable": sys.executable,
        "main": getattr(__main__, "__file__", None),
        "fds": sorted(os.listdir("/proc/self/fd")),
        "encoding": [sys.getfilesystemencoding(), sys.stdout.encoding,
                     locale.getpreferredencoding(False)],
        "tz": list(time.tzname),
        "hostname": socket.gethostname(),
        "tmp": os.listdir("/tmp"),
        "root": sorted(os.listdir("/")),
    }
'''

# Differ from one function (or environment) to another by design.
PER_FUNCTION = {"AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_LOG_GROUP_NAME",
                "AWS_LAMBDA_LOG_STREAM_NAME", "_X_AMZN_TRACE_ID",
                # A session of the function's role, named after the function.
                "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}


def _waiting_zygotes(parent: str) -> list[str]:
    """Host pids of zygotes not claimed yet: in a blank's `pool-` cgroup under `parent`
    (cgroup v1), or in no cgroup of ours (v2)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            uid = next(line for line in status.splitlines() if line.startswith("Uid:"))
            if int(uid.split()[1]) not in HOST_SANDBOX_UIDS:
                continue
            if MARKER not in Path(f"/proc/{pid}/environ").read_bytes():
                continue
            cgroups = Path(f"/proc/{pid}/cgroup").read_text()
        except (OSError, StopIteration):
            continue
        ours = [line.split(":", 2)[2] for line in cgroups.splitlines()
                if f"/{parent}/" in line]
        if not ours or any("/pool-" in c for c in ours):
            found.append(pid)
    return found


# System call numbers, as /proc/<pid>/syscall shows them.
_SYSCALLS = {"x86_64": {"read": 0, "recvmsg": 47}, "aarch64": {"read": 63, "recvmsg": 212}}


def _blocked_in(pid, call: str, fd: int | None = None) -> bool:
    number = _SYSCALLS.get(platform.machine(), _SYSCALLS["x86_64"])[call]
    try:
        fields = Path(f"/proc/{pid}/syscall").read_text().split()
    except OSError:
        return False
    return fields[:1] == [str(number)] and (fd is None or fields[1:2] == [hex(fd)])


def _children(pid) -> list[str]:
    try:
        return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []


def _zygote_ready(server) -> bool:
    """A zygote blocked reading its spec (fd 3), and the helper's preparer waiting for its
    next request, so that it has handed that zygote's blank to the helper."""
    if not any(_blocked_in(p, "read", 3) for p in _waiting_zygotes(server.cgroup_parent)):
        return False
    helpers = _children(server.proc.pid)
    return any(_blocked_in(c, "recvmsg") for h in helpers for c in _children(h)
               if _in_host_pid_ns(c))


def _in_host_pid_ns(pid) -> bool:
    """Unlike the sandboxes' inits, which are also the helper's children."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return any(line.startswith("NSpid:") and len(line.split()) == 2
               for line in status.splitlines())


def _report(lam, name):
    inv = invoke(lam, name)
    assert inv.function_error is None, inv.raw[:2000]
    import json
    return json.loads(inv.raw)


def test_a_function_started_from_a_zygote_sees_what_a_fresh_start_sees(exec_server):
    lam = exec_server.client("lambda")
    env = {"Variables": {"GREETING": "hello", "LANG": "en_US.UTF-8"}}
    # Any shared library will do; it is loaded by a name only the package's lib/ has.
    shipped = Path("/usr/lib/x86_64-linux-gnu/libz.so.1")
    shipped = shipped if shipped.exists() else Path("/lib/x86_64-linux-gnu/libz.so.1")
    files = {"report.py": REPORT, "lib/libstratus_shipped.so": shipped.resolve().read_bytes()}
    for name in ("first", "second"):
        create_function(lam, name, files, runtime="python3.11",
                        handler="report.handler", Environment=env)
    create_function(lam, "own-path", {"report.py": REPORT}, runtime="python3.11",
                    handler="report.handler",
                    Environment={"Variables": {"PYTHONPATH": "/var/task/lib"}})

    fresh = _report(lam, "first")
    assert fresh["zygote"] is False, "no zygote before a Python function has started"
    wait_until(lambda: _zygote_ready(exec_server), timeout=20,
               what="a zygote to wait for the next Python function")
    served = _report(lam, "second")
    assert served["zygote"] is True, "the second function should start from a zygote"

    assert served["env"].keys() == fresh["env"].keys()
    assert "_STRATUS_ZYGOTE_FD" not in served["env"]
    for key, value in fresh["env"].items():
        if key not in PER_FUNCTION:
            assert served["env"][key] == value, key
    assert served["env"]["GREETING"] == "hello"
    assert served["env"]["AWS_LAMBDA_FUNCTION_NAME"] == "second"
    # The dynamic linker gives up for good on a directory of LD_LIBRARY_PATH it found
    # missing, so a zygote must not have looked before the package's lib/ was there.
    assert fresh["shipped_library"] == "loaded"
    for key in ("cwd", "path", "argv", "executable", "main", "fds", "encoding", "tz",
                "hostname", "tmp", "root", "shipped_library"):
        assert served[key] == fresh[key], key
    assert served["cwd"] == "/var/task"
    assert served["path"][0] == "/var/task"
    assert served["tmp"] == [], "a fresh /tmp, not the host's root it was kept at"

    # PYTHONPATH is read at start-up: such a function gets an interpreter of its own.
    own = _report(lam, "own-path")
    assert own["zygote"] is False
    assert "/var/task/lib" in own["path"]
    assert _waiting_zygotes(exec_server.cgroup_parent), "the zygote still waits"
