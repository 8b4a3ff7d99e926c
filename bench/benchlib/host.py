"""Facts about the host, process memory and CPU readings, and installing Debian packages."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def sh(cmd: str) -> str:
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    perf = sh("perf stat -e instructions true 2>&1")
    if not perf:
        perf_note = "perf not installed"
    elif "not supported" in perf or "<not counted>" in perf:
        perf_note = "perf present; no hardware counters (software events such as cpu-clock only)"
    else:
        perf_note = "perf present with hardware counters"
    return {
        "nproc": sh("nproc"),
        "free_g": sh("free -g"),
        "kernel": platform.release(),
        "uname": sh("uname -srvm"),
        "cpu_model": cpu,
        "cgroups": "v2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else
                   "v1 (hybrid)" if Path("/sys/fs/cgroup/unified").exists() else "v1",
        "os": sh(". /etc/os-release && echo $PRETTY_NAME"),
        "python": platform.python_version(),
        "rustc": sh("rustc --version"),
        "perf": perf_note,
    }


# --- memory ----------------------------------------------------------------------------


def first_touch_cost(mib: int = 256) -> tuple[float, float]:
    """Microseconds per 4 KiB page to touch `mib` of fresh anonymous memory, and to touch
    it again. On a VM whose memory the host backs lazily (and takes back when the guest
    frees it), the first figure is many times the second, and every cold start that needs
    new memory pays it."""
    import mmap
    import time
    m = mmap.mmap(-1, mib << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    pages = (mib << 20) // 4096
    out = []
    for _ in range(2):
        t = time.perf_counter()
        for i in range(0, mib << 20, 4096):
            m[i] = 1
        out.append((time.perf_counter() - t) / pages * 1e6)
    m.close()
    return out[0], out[1]


def smaps_rollup(pid: int) -> dict[str, int]:
    """`/proc/<pid>/smaps_rollup` in bytes: Rss, Pss, Pss_Anon, Private_Dirty..."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            m = re.match(r"^(\w+):\s+(\d+) kB", line)
            if m:
                out[m.group(1)] = int(m.group(2)) * 1024
    except OSError:
        pass
    return out


def rss_anon(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def ppid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def cgroup_memory(d: Path) -> dict[str, int]:
    """Usage and the anon part of it for one memory cgroup directory (v1 or v2)."""
    out: dict[str, int] = {}
    stat = {}
    try:
        for line in (d / "memory.stat").read_text().splitlines():
            k, v = line.split()
            stat[k] = int(v)
    except (OSError, ValueError):
        pass
    if (d / "memory.usage_in_bytes").exists():  # v1
        out["usage"] = int((d / "memory.usage_in_bytes").read_text())
        out["anon"] = stat.get("rss", 0)
        out["cache"] = stat.get("cache", 0)
        try:
            out["kernel"] = int((d / "memory.kmem.usage_in_bytes").read_text())
        except (OSError, ValueError):
            pass
    else:  # v2
        out["usage"] = int((d / "memory.current").read_text())
        out["anon"] = stat.get("anon", 0)
        out["cache"] = stat.get("file", 0)
        out["kernel"] = stat.get("kernel", 0)
    return out


def cgroup_procs(d: Path) -> list[int]:
    try:
        return [int(x) for x in (d / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


# --- CPU ------------------------------------------------------------------------------


def proc_cpu_seconds(pid: int) -> float:
    """user + system CPU of a process (all its threads), in seconds."""
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / CLK_TCK
    except (OSError, ValueError, IndexError):
        return 0.0


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies-seconds since boot over all CPUs, from /proc/stat."""
    f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = f[3] + (f[4] if len(f) > 4 else 0)
    total = sum(f[:8])
    return (total - idle) / CLK_TCK, total / CLK_TCK


def wait_quiet(threshold_cores: float = 0.3, window: float = 0.3, need: int = 2,
               timeout: float = 30.0) -> float:
    """Waits until the machine is nearly idle (`need` consecutive windows below
    `threshold_cores` busy), e.g. while the kernel tears down the network namespaces of
    environments just killed. Returns the seconds waited (the timeout when never quiet)."""
    import time
    start = time.monotonic()
    quiet = 0
    while time.monotonic() - start < timeout:
        b0, t0 = machine_cpu()
        time.sleep(window)
        b1, t1 = machine_cpu()
        ncpu = os.cpu_count() or 1
        busy = (b1 - b0) / (t1 - t0) * ncpu if t1 > t0 else 0.0
        quiet = quiet + 1 if busy < threshold_cores else 0
        if quiet >= need:
            break
    return time.monotonic() - start


# --- other people's work on the machine ---------------------------------------------------

PF_KTHREAD = 0x00200000
# Container plumbing that double-forks away from the harness but works for it.
OURS_BY_NAME = {"conmon", "podman", "runc", "crun", "catatonit"}


def process_table() -> dict[int, tuple[int, float, str, int]]:
    """pid → (ppid, CPU seconds, comm, start time in ticks) for every user process."""
    out = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            raw = open(f"/proc/{p}/stat").read()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1:raw.rindex(")")]
        f = raw[raw.rindex(")") + 2:].split()
        try:
            if int(f[6]) & PF_KTHREAD:
                continue
            out[int(p)] = (int(f[1]), (int(f[11]) + int(f[12])) / CLK_TCK, comm, int(f[19]))
        except (ValueError, IndexError):
            continue
    return out


def foreign_cpu(before: dict, after: dict, root: int | None = None) -> tuple[float, str]:
    """CPU seconds that processes outside the harness's process tree (and outside container
    plumbing it started) used between two `process_table()` snapshots, and the busiest
    command names. Processes that started and ended between the snapshots are missed."""
    root = root or os.getpid()
    table = dict(before)
    table.update(after)

    def ours(pid: int) -> bool:
        seen = 0
        while pid > 1 and seen < 64:
            if pid == root:
                return True
            entry = table.get(pid)
            if entry is None:
                return False
            if entry[2] in OURS_BY_NAME:
                return True
            pid = entry[0]
            seen += 1
        return False

    by_comm: dict[str, float] = {}
    total = 0.0
    for pid, (ppid, cpu, comm, start) in after.items():
        if ours(pid):
            continue
        prev = before.get(pid)
        d = cpu - prev[1] if prev and prev[3] == start else cpu
        if d > 0:
            total += d
            by_comm[comm] = by_comm.get(comm, 0.0) + d
    top = ", ".join(f"{c} {v:.1f}s" for c, v in sorted(by_comm.items(), key=lambda kv: -kv[1])[:4]
                    if v >= 0.05)
    return total, top


# --- packages -------------------------------------------------------------------------


def ensure_packages(pkgs: dict[str, str], allow_install: bool, log) -> dict[str, str | None]:
    """For each command → Debian package, makes sure the command exists, installing the
    package with apt-get when allowed (root only). Returns command → None when available,
    else the reason it is not."""
    out: dict[str, str | None] = {}
    missing = {cmd: pkg for cmd, pkg in pkgs.items() if shutil.which(cmd) is None}
    if missing and allow_install and os.geteuid() == 0 and shutil.which("apt-get"):
        names = sorted(set(missing.values()))
        log(f"installing {' '.join(names)} with apt-get (needed for the peer comparison)")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        r = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *names],
                           capture_output=True, text=True, env=env, timeout=900)
        if r.returncode != 0:
            subprocess.run(["apt-get", "update"], capture_output=True, env=env, timeout=900)
            r = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *names],
                               capture_output=True, text=True, env=env, timeout=900)
        if r.returncode != 0:
            log(f"apt-get install failed: {r.stderr.strip()[-500:]}")
    for cmd, pkg in pkgs.items():
        if shutil.which(cmd):
            out[cmd] = None
        elif not allow_install:
            out[cmd] = f"`{cmd}` not installed (Debian package {pkg}; installation disabled)"
        elif os.geteuid() != 0:
            out[cmd] = f"`{cmd}` not installed and installing {pkg} needs root"
        else:
            out[cmd] = f"`{cmd}` not installed and `apt-get install {pkg}` failed"
    return out
