#!/usr/bin/env python3
"""Stratus benchmark harness. Run it through `bench/run` (which builds Stratus in release
mode first); `bench/run --help` lists the knobs.

Sections (each can be selected with --only):

  cold     cold start, invoke → response, for provided.al2023 (a static Rust bootstrap on
           the lambda_runtime crate), python3.11 and nodejs20.x: N new functions per
           repetition, each invoked once, with Stratus's REPORT figures beside the client's.
  warm     warm invoke latency (no-op handler) and throughput at concurrency 1, 8 and 64.
  scale    scale-out: 100 concurrent invokes (handler holds 200 ms) at a fresh function.
  density  platform memory per idle environment.
  peers    the floor (plain fork+exec of the same runtime process) and the peers
           (unshare into fresh namespaces, runc run, podman run --rm) for the cold start.
  logs     CloudWatch Logs: PutLogEvents throughput (batches of 1,000 events from 1 and 4
           clients), function output reaching its log group (a function printing N lines),
           and FilterLogEvents over 1 GB of segment files (a term matching a few events, a
           JSON pattern, a term matching nothing) against `grep -c` on the same files.

With --baseline-bin (or `bench/run --baseline REV`, which builds REV with
bench/build-baseline), the warm section also compares this build with that one in the same
run: rounds of a fresh server of each, alternating, reporting both medians and the ratio of
warm invoke latency (c=1), throughput (c=1, c=8) and server CPU per invoke.

Writes bench/results/<timestamp>.md and .json, prints the Markdown, and (full runs) replaces
the generated part of BENCHMARKS.md. Exit status: 0 when every Stratus measurement ran, 1
when one failed (the table is still written, with the failure in it), 2 when no table could
be produced.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from benchlib import host, peers, stats  # noqa: E402
from benchlib.fire import burst  # noqa: E402
from benchlib.stratus import (BenchError, RawConn, Server, Signed, make_zip,  # noqa: E402
                              memory_cgroup_dir, subdirs, timed_invoke)

MEMORY_MB = 1769  # one full vCPU on Lambda; Stratus's quota is memory/1769 of a core
FIXTURE = REPO / "tests/e2e/fixtures/rust-fn"
BENCH_FN = HERE / "rust-fn"
TOOLS_DIR = REPO / "target/bench-tools"
FN_TARGET_DIR = REPO / "target/bench-rust-fn"
RESULTS = HERE / "results"
BENCHMARKS_MD = REPO / "BENCHMARKS.md"
BEGIN = "<!-- bench:generated:begin -->"
END = "<!-- bench:generated:end -->"

PY_HANDLER = 'def handler(event, context):\n    return "ok"\n'
NODE_HANDLER = 'exports.handler = async () => "ok";\n'

TARGETS = {
    "cold_provided_p50_ms": ("provided.al2023 cold start p50", 3.0, "≤ 3 ms"),
    "cold_python_p50_ms": ("python3.11 cold start p50, own interpreter", 15.0, "≤ 15 ms"),
    "cold_python-zygote_p50_ms": ("python3.11 cold start p50, from a zygote", 5.0, "≤ 5 ms"),
    "cold_node_p50_ms": ("nodejs20.x cold start p50", 100.0, "≤ 100 ms"),
    "warm_p50_ms": ("warm invoke overhead p50", 0.2, "≤ 0.2 ms"),
    "warm_p99_ms": ("warm invoke overhead p99", 1.0, "≤ 1 ms"),
    "throughput_max_rps": ("no-op invokes/s (best of c=1/8/64)", 10_000.0, "≥ 10,000/s"),
    "scale_100_ms": ("100 environments serving", 500.0, "≤ 0.5 s"),
    "density_mib": ("platform memory per idle environment", 2.0, "≤ 2 MiB"),
}
HIGHER_IS_BETTER = {"throughput_max_rps"}
SECTIONS = ("cold", "warm", "scale", "density", "peers", "logs")


def log(msg: str):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- settings -------------------------------------------------------------------------


def parse_args():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true",
                   help="few iterations of everything (checks the harness; < 3 min after builds)")
    p.add_argument("--only", default=",".join(SECTIONS),
                   help="comma-separated sections to run (default: all)")
    p.add_argument("--cold-iterations", type=int, help="cold starts per runtime per repetition "
                   "(default 200; smoke 5)")
    p.add_argument("--reps", type=int, help="repetitions of each measurement (default 3; smoke 1)")
    p.add_argument("--peer-iterations", type=int,
                   help="launches per peer per repetition (default 100; smoke 3)")
    p.add_argument("--podman-iterations", type=int,
                   help="podman launches per repetition (default 30; smoke 2)")
    p.add_argument("--warm-seconds", type=float, help="seconds per throughput run (default 5; smoke 1)")
    p.add_argument("--scale-n", type=int, default=100, help="concurrent invokes in the scale-out "
                   "measurement (default 100)")
    p.add_argument("--scale-reps", type=int, help="scale-out repetitions (default 5; smoke 1)")
    p.add_argument("--density-n", type=int, help="idle environments for density (default 100; smoke 10)")
    p.add_argument("--no-install", action="store_true",
                   help="never apt-get install runc/podman; missing peers are reported as not available")
    p.add_argument("--no-peers-containers", action="store_true",
                   help="skip runc and podman (reported as skipped)")
    p.add_argument("--profile", action="store_true",
                   help="record `perf record -a -g` (cpu-clock) during the provided cold series and "
                        "the c=8 throughput run; summaries go to bench/results/")
    p.add_argument("--stratus-bin", default=str(REPO / "target/release/stratus"))
    p.add_argument("--baseline-bin", help="another Stratus binary (e.g. from `bench/build-baseline "
                   "REV`; `bench/run --baseline REV` builds and passes it): the warm section "
                   "also measures it, in rounds alternating with this build, each on a fresh "
                   "server, and reports both medians and their ratio")
    p.add_argument("--baseline-rounds", type=int,
                   help="rounds of the baseline comparison, each one server of each build "
                        "(default 6; smoke 1)")
    p.add_argument("--logs-filter-mb", type=int,
                   help="MB of log segment files FilterLogEvents scans (default 1024; smoke 50)")
    p.add_argument("--logs-function-lines", type=int,
                   help="lines the logs section's function prints (default 100000; smoke 10000)")
    p.add_argument("--update-benchmarks", choices=("auto", "yes", "no"), default="auto",
                   help="rewrite the generated part of BENCHMARKS.md (auto: full runs only)")
    p.add_argument("--retries", type=int, default=2,
                   help="repeat a measurement disturbed by other processes up to N times (default 2)")
    p.add_argument("--quiet-timeout", type=float, default=120.0,
                   help="seconds to wait for an idle machine before each measurement (default 120)")
    p.add_argument("--keep-workdir", action="store_true")
    a = p.parse_args()
    smoke = a.smoke
    a.cold_iterations = a.cold_iterations or (5 if smoke else 200)
    a.reps = a.reps or (1 if smoke else 3)
    a.peer_iterations = a.peer_iterations or (3 if smoke else 100)
    a.podman_iterations = a.podman_iterations or (2 if smoke else 30)
    a.warm_seconds = a.warm_seconds or (1.0 if smoke else 5.0)
    a.scale_reps = a.scale_reps or (1 if smoke else 5)
    a.density_n = a.density_n or (10 if smoke else 100)
    a.warm_samples = 300 if smoke else 3000
    a.boto3_samples = 30 if smoke else 500
    a.baseline_rounds = a.baseline_rounds or (1 if smoke else 6)
    a.logs_filter_mb = a.logs_filter_mb or (50 if smoke else 1024)
    a.logs_function_lines = a.logs_function_lines or (10_000 if smoke else 100_000)
    a.sections = [s.strip() for s in a.only.split(",") if s.strip()]
    unknown = set(a.sections) - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections {', '.join(sorted(unknown))} (known: {', '.join(SECTIONS)})")
    return a


# --- builds ---------------------------------------------------------------------------


def host_triple() -> str:
    out = subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.startswith("host:"):
            return line.split(":", 1)[1].strip()
    raise BenchError("cannot tell rustc's host triple")


def build_rust_fn(manifest_dir: Path, binary_name: str) -> Path:
    """A static executable (crt-static; the explicit --target keeps the flag off build
    scripts and proc macros) so the same file runs under Stratus, directly, and alone in a
    container rootfs. Built to target/bench-rust-fn, never committed."""
    triple = host_triple()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARGO_TARGET_")}
    env["RUSTFLAGS"] = "-C target-feature=+crt-static"
    # Optimised as a user's function would be (the e2e fixture's manifest says opt-level 1
    # to build quickly; this overrides it without editing it, and both share dependencies).
    env["CARGO_PROFILE_RELEASE_OPT_LEVEL"] = "3"
    cmd = ["cargo", "build", "--release", "--locked", "--manifest-path",
           str(manifest_dir / "Cargo.toml"), "--target-dir", str(FN_TARGET_DIR), "--target", triple]
    log(" ".join(cmd[:8]) + " …")
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    if r.returncode != 0:
        raise BenchError(f"building {manifest_dir} failed:\n{r.stderr[-3000:]}")
    path = FN_TARGET_DIR / triple / "release" / binary_name
    if not path.is_file():
        raise BenchError(f"{path} missing after the build")
    return path


def build_tools() -> dict[str, Path | str]:
    TOOLS_DIR.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path | str] = {}
    cc = shutil.which("cc") or shutil.which("gcc")
    for name, flags in (("loadgen", ["-O2", "-pthread"]), ("fdlisten", ["-O2", "-static"]),
                        ("relay", ["-O2"])):
        if cc is None:
            out[name] = "no C compiler (cc)"
            continue
        dst = TOOLS_DIR / name
        r = subprocess.run([cc, *flags, "-o", str(dst), str(HERE / "c" / f"{name}.c")],
                           capture_output=True, text=True)
        out[name] = dst if r.returncode == 0 else f"cc failed: {r.stderr.strip()[-300:]}"
    return out


# --- measurement helpers ----------------------------------------------------------------


class Ctx:
    def __init__(self, args):
        self.args = args
        self.workdir = Path(tempfile.mkdtemp(prefix="stratus-bench-"))
        self.binary = Path(args.stratus_bin)
        self.results: dict = {"sections": {}, "errors": {}, "notes": []}
        self.servers: list[Server] = []
        self.runtime_dir: Path | None = None
        self.fixture_bin: Path | None = None
        self.bench_fn_bin: Path | None = None
        self.tools: dict = {}
        self.profiles: list[str] = []
        self.stops = self.leaky_stops = self.leaked_cgroups = 0
        self.settle_waits: list[float] = []
        self.retried = 0

    def server(self, binary: Path | None = None, **kw) -> Server:
        s = Server(binary or self.binary, self.workdir, **kw)
        self.servers.append(s)
        s.start()
        if self.runtime_dir is None and (s.data_dir / "runtime").is_dir():
            self.runtime_dir = self.workdir / "runtime"
            shutil.copytree(s.data_dir / "runtime", self.runtime_dir)
        return s

    def done(self, s: Server):
        s.stop()
        self.stops += 1
        if s.leaked_cgroups:
            self.leaky_stops += 1
            self.leaked_cgroups += s.leaked_cgroups
        s.cleanup()
        # The kernel frees the environments' namespaces after they are gone, in the
        # background; the next measurement should not run beside that.
        waited = host.wait_quiet(timeout=min(30.0, self.args.quiet_timeout))
        self.settle_waits.append(waited)
        if waited >= 29:
            log("machine still busy 30 s after stopping a server; measuring anyway")
        if s in self.servers:
            self.servers.remove(s)

    def shutdown(self):
        for s in list(self.servers):
            try:
                s.stop()
            except Exception:  # noqa: BLE001
                s.kill()
        if not self.args.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


class Profiler:
    """`perf record -a -g -e cpu-clock` for the duration of a `with` block (when enabled)."""

    def __init__(self, ctx: Ctx, label: str, pids: list[int] | None = None):
        self.ctx, self.label, self.proc, self.pids = ctx, label, None, pids
        self.data = ctx.workdir / f"perf-{label}.data"

    def __enter__(self):
        if self.ctx.args.profile and shutil.which("perf"):
            target = ["-p", ",".join(map(str, self.pids))] if self.pids else ["-a"]
            self.proc = subprocess.Popen(
                ["perf", "record", *target, "-g", "-e", "cpu-clock", "-F", "1999", "-o",
                 str(self.data)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        parts = []
        for extra in (["--no-children", "--sort", "comm,dso", "--percent-limit", "0.3"],
                      ["--children", "--sort", "comm,sym", "--percent-limit", "1"]):
            rep = subprocess.run(["perf", "report", "-i", str(self.data), "--stdio", "-g", "none",
                                  *extra], capture_output=True, text=True, timeout=600)
            lines = [l for l in rep.stdout.splitlines() if l.strip() and not l.startswith("#")]
            parts.append("\n".join(lines[:60]))
        scope = "processes " + ",".join(map(str, self.pids)) if self.pids else \
            "whole machine, idle included"
        self.ctx.profiles.append(f"##### perf: {self.label} ({scope})"
                                 f"\n\n```text\n{parts[0]}\n\n{parts[1]}\n```\n")


def guarded(ctx: Ctx, label: str, fn):
    """Runs one measurement `fn()` on a quiet machine: waits until the CPUs are nearly idle,
    then runs it, and repeats it (at most `--retries` times) when processes outside the
    harness (someone's build, say) used more than 0.1 core on average meanwhile. What was
    kept despite interference is noted in the results."""
    a = ctx.args
    for attempt in range(a.retries + 1):
        waited = host.wait_quiet(timeout=a.quiet_timeout)
        if waited >= a.quiet_timeout - 1:
            log(f"{label}: the machine is still busy after {a.quiet_timeout:.0f} s; measuring anyway")
        before = host.process_table()
        t0 = time.monotonic()
        result = fn()
        elapsed = time.monotonic() - t0
        cpu, top = host.foreign_cpu(before, host.process_table())
        if cpu <= max(0.3, 0.1 * elapsed):
            return result
        if attempt < a.retries:
            ctx.retried += 1
            log(f"{label}: other processes used {cpu:.1f} CPU-s in {elapsed:.1f} s ({top}); "
                f"measuring again")
        else:
            ctx.results["notes"].append(
                f"{label} ran while other processes used {cpu:.1f} CPU-s in {elapsed:.1f} s "
                f"({top}), after {a.retries} repeats")
            return result


def zip_for(runtime: str, ctx: Ctx, sleeper: bool = False) -> tuple[str, str, bytes]:
    if runtime == "provided":
        binary = ctx.bench_fn_bin if sleeper else ctx.fixture_bin
        return "provided.al2023", "bootstrap", make_zip({"bootstrap": binary.read_bytes()})
    if runtime in ("python", "python-zygote"):
        return "python3.11", "index.handler", make_zip({"index.py": PY_HANDLER})
    if runtime == "node":
        return "nodejs20.x", "index.handler", make_zip({"index.js": NODE_HANDLER})
    raise ValueError(runtime)


def create_functions(s: Server, names: list[str], runtime_id: str, handler: str, code: bytes,
                     env: dict | None = None):
    for n in names:
        s.create_function(n, runtime_id, handler, code, MEMORY_MB, env=env)
    s.wait_active(names)


def pooled(rep_values: list[list[float]]) -> dict:
    allv = [v for rep in rep_values for v in rep]
    out = stats.summary(allv)
    out["samples"] = [[round(v, 4) for v in r] for r in rep_values]  # per repetition
    out["rep_p50"] = [stats.median(r) for r in rep_values if r]
    out["rep_p99"] = [stats.percentile(r, 99) for r in rep_values if r]
    return out


# --- sections -------------------------------------------------------------------------


# Cold-start series: "python" starts its own interpreter each time (zygotes off);
# "python-zygote" waits, before each invocation, until a zygote (see `zygote_pool`) is ready.
COLD_RUNTIMES = ("provided", "python", "python-zygote", "node")
ZYGOTE_MARKER = b"_STRATUS_ZYGOTE_FD="
ZYGOTE_POOL = 2  # the server's default `zygote_pool`
# The number of `read` in /proc/<pid>/syscall.
READ_SYSCALL = {"aarch64": "63"}.get(os.uname().machine, "0")


def waiting_zygotes(s: Server) -> int:
    """Zygotes of server `s` ready and not claimed yet: sandbox processes started as a zygote,
    blocked reading their spec descriptor (so done initialising), that sit in a blank's
    `pool-` cgroup (cgroup v1) or in none of the server's (v2)."""
    n = 0
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            if ZYGOTE_MARKER not in (p / "environ").read_bytes():
                continue
            # `read(3, ...)`: the read system call, first argument the spec descriptor.
            if (p / "syscall").read_text().split()[:2] != [READ_SYSCALL, "0x3"]:
                continue
            cgroups = (p / "cgroup").read_text()
        except OSError:
            continue
        ours = [c for c in cgroups.splitlines() if f"/{s.cgroup_parent}/" in c]
        n += not ours or any("/pool-" in c for c in ours)
    return n


def cold_rep(ctx: Ctx, runtime: str, rep: int) -> tuple[list, list, list]:
    """One repetition: a fresh server, N+1 new functions, each invoked once."""
    a = ctx.args
    runtime_id, handler, code = zip_for(runtime, ctx)
    s = ctx.server(extra_config="zygote_pool = 0\n" if runtime == "python" else "")
    try:
        names = [f"cold-{runtime}-{i}" for i in range(a.cold_iterations + 1)]
        what = "profiled extra rep" if rep < 0 else f"rep {rep + 1}/{a.reps}"
        log(f"cold {runtime_id} {what}: creating {len(names)} functions")
        create_functions(s, names, runtime_id, handler, code)
        conn = RawConn(s.host, s.port).connect()
        # The first invocation on a new server is not counted (lazy set-up in the server
        # and the helper).
        timed_invoke(conn, s.invoke_request(names[0], tail=True))
        c_rep, i_rep, d_rep = [], [], []
        with Profiler(ctx, f"cold-{runtime}") if rep < 0 else contextlib.nullcontext():
            for name in names[1:]:
                if runtime == "python-zygote":
                    deadline = time.monotonic() + 30
                    # The whole pool ready: no blank being made beside the measurement.
                    while waiting_zygotes(s) < ZYGOTE_POOL:
                        if time.monotonic() > deadline:
                            raise BenchError("no zygote became ready within 30 s")
                        time.sleep(0.002)
                req = s.invoke_request(name, tail=True)  # signed before the clock starts
                inv = timed_invoke(conn, req)
                if inv.status != 200 or inv.function_error:
                    raise BenchError(f"cold invoke of {name}: {inv.status} "
                                     f"{inv.function_error} {inv.body[:300]!r}\n{inv.log}")
                if "init_ms" not in inv.report:
                    raise BenchError(f"invoke of new function {name} was not a cold "
                                     f"start (no Init Duration):\n{inv.log}")
                c_rep.append(inv.seconds * 1e3)
                i_rep.append(inv.report["init_ms"])
                d_rep.append(inv.report.get("duration_ms", math.nan))
        conn.close()
        log(f"  client p50 {stats.median(c_rep):.2f} ms, Init Duration p50 "
            f"{stats.median(i_rep):.2f} ms")
        return c_rep, i_rep, d_rep
    finally:
        ctx.done(s)


def section_cold(ctx: Ctx) -> dict:
    a = ctx.args
    out = {}
    for runtime in COLD_RUNTIMES:
        client, init, dur = [], [], []
        if a.profile and runtime == "provided":
            # One extra, unmeasured repetition under `perf record -a`, so that the
            # figures are not taken under the profiler.
            cold_rep(ctx, runtime, -1)
        for rep in range(a.reps):
            c_rep, i_rep, d_rep = guarded(ctx, f"cold {runtime} rep {rep + 1}",
                                          lambda: cold_rep(ctx, runtime, rep))
            client.append(c_rep)
            init.append(i_rep)
            dur.append(d_rep)
        runtime_id = zip_for(runtime, ctx)[0]
        out[runtime] = {"runtime": runtime_id, "memory_mb": MEMORY_MB,
                        "client_ms": pooled(client), "init_ms": pooled(init),
                        "duration_ms": pooled(dur)}
    return out


def loadgen(ctx: Ctx, port: int, request: bytes, conns: int, seconds: float,
            what: str = "") -> dict:
    """One run of bench/c/loadgen.c against 127.0.0.1:`port`: its JSON document."""
    req_file = ctx.workdir / "loadgen-request.bin"
    req_file.write_bytes(request)
    r = subprocess.run([str(ctx.tools["loadgen"]), "127.0.0.1", str(port), str(conns),
                        str(seconds), str(req_file)], capture_output=True, text=True,
                       timeout=seconds + 120)
    if not r.stdout.strip():
        raise BenchError(f"loadgen failed ({r.returncode}): {r.stderr[-500:]}")
    doc = json.loads(r.stdout)
    if doc["failed_connections"] or doc["errors"]:
        raise BenchError(f"loadgen saw errors: {doc}{what}")
    return doc


class Relay:
    """bench/c/relay.c, the floor of a warm invoke: the same four loopback TCP messages
    through three processes (client → relay → a function process → relay → client) with no
    other work. Its function processes die with it."""

    def __init__(self, tool: Path, functions: int):
        self.proc = subprocess.Popen([str(tool), str(functions)], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.isdigit():
            self.stop()
            raise BenchError(f"relay did not start: {self.proc.stderr.read()[-500:]}")
        self.port = int(line)

    def run(self, ctx: Ctx, request: bytes, conns: int, seconds: float) -> dict:
        m0 = host.machine_cpu()
        doc = loadgen(ctx, self.port, request, conns, seconds, what=" (relay)")
        m1 = host.machine_cpu()
        total = m1[1] - m0[1]
        doc["cpu_cores"] = {
            "client": (doc["cpu_user"] + doc["cpu_sys"]) / doc["seconds"],
            "machine": (m1[0] - m0[0]) / total * (os.cpu_count() or 1) if total else math.nan,
        }
        return doc

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()


def loadgen_run(ctx: Ctx, s: Server, request: bytes, conns: int, seconds: float) -> dict:
    helper = s.helper_pid()
    env_dir = memory_cgroup_dir(s.cgroup_parent)
    env_pids = [p for d in subdirs(env_dir) for p in host.cgroup_procs(d)]
    before = (host.machine_cpu(), host.proc_cpu_seconds(s.pid),
              host.proc_cpu_seconds(helper) if helper else 0.0,
              sum(host.proc_cpu_seconds(p) for p in env_pids))
    try:
        doc = loadgen(ctx, s.port, request, conns, seconds)
    except BenchError as e:
        raise BenchError(f"{e}; server stderr:\n{s.stderr_tail(1500)}") from None
    after = (host.machine_cpu(), host.proc_cpu_seconds(s.pid),
             host.proc_cpu_seconds(helper) if helper else 0.0,
             sum(host.proc_cpu_seconds(p) for p in env_pids))
    wall = doc["seconds"]
    busy = after[0][0] - before[0][0]
    total = after[0][1] - before[0][1]
    ncpu = os.cpu_count() or 1
    doc["cpu_cores"] = {
        "client": (doc["cpu_user"] + doc["cpu_sys"]) / wall,
        "server": (after[1] - before[1]) / wall,
        "helper": (after[2] - before[2]) / wall,
        "functions": (after[3] - before[3]) / wall,
        "machine": busy / total * ncpu if total else math.nan,
        "available": ncpu,
    }
    return doc


def prewarm(s: Server, name: str, n: int):
    """Makes `n` idle environments of `name`: n concurrent invokes that each hold 100 ms."""
    b = burst(s, name, n, b'{"sleep_ms": 100}')
    if b.ok != n:
        raise BenchError(f"prewarming {n} environments: {b.describe_failures()}")


def section_warm(ctx: Ctx) -> dict:
    a = ctx.args
    out: dict = {"memory_mb": MEMORY_MB, "function": "bench/rust-fn (provided.al2023, returns \"ok\")"}
    s = ctx.server()
    try:
        runtime_id, handler, code = zip_for("provided", ctx, sleeper=True)
        create_functions(s, ["noop"], runtime_id, handler, code)
        conn = RawConn(s.host, s.port).connect()
        req = Signed(lambda: s.invoke_request("noop"))
        for _ in range(200):
            timed_invoke(conn, req.fresh())

        def series(make_req, n, check=True):
            vals = []
            for _ in range(n):
                t0 = time.perf_counter()
                r = conn.request(make_req())
                vals.append((time.perf_counter() - t0) * 1e3)
                if check and (r.status != 200 or "x-amz-function-error" in r.headers):
                    raise BenchError(f"warm invoke: {r.status} {r.body[:200]!r}")
            return vals

        log("warm: Python raw-socket client, health endpoint, REPORT durations, boto3")
        out["python_raw_ms"] = stats.summary(guarded(
            ctx, "warm Python series", lambda: series(req.fresh, a.warm_samples)))
        health = f"GET /_stratus/health HTTP/1.1\r\nHost: {s.host}:{s.port}\r\n\r\n".encode()
        out["health_ms"] = stats.summary(guarded(
            ctx, "health series", lambda: series(lambda: health, a.warm_samples, check=False)))
        tail_req = Signed(lambda: s.invoke_request("noop", tail=True))

        def tail_series():
            rtt, dur, over = [], [], []
            for _ in range(a.warm_samples):
                inv = timed_invoke(conn, tail_req.fresh())
                if inv.status != 200 or "duration_ms" not in inv.report:
                    raise BenchError(f"warm tail invoke: {inv.status} {inv.log!r}")
                rtt.append(inv.seconds * 1e3)
                dur.append(inv.report["duration_ms"])
                over.append(inv.seconds * 1e3 - inv.report["duration_ms"])
            return rtt, dur, over

        rtt, dur, over = guarded(ctx, "warm Tail series", tail_series)
        out["tail_rtt_ms"] = stats.summary(rtt)
        out["report_duration_ms"] = stats.summary(dur)
        out["rtt_minus_duration_ms"] = stats.summary(over)
        conn.close()
        try:
            import boto3
            import botocore.config
            lam = boto3.client(
                "lambda", endpoint_url=f"http://{s.host}:{s.port}", region_name="us-east-1",
                aws_access_key_id=s.creds[0], aws_secret_access_key=s.creds[1],
                config=botocore.config.Config(retries={"max_attempts": 0}))
            for _ in range(20):
                lam.invoke(FunctionName="noop", Payload=b"{}")["Payload"].read()
            def boto3_series():
                b3 = []
                for _ in range(a.boto3_samples):
                    t0 = time.perf_counter()
                    lam.invoke(FunctionName="noop", Payload=b"{}")["Payload"].read()
                    b3.append((time.perf_counter() - t0) * 1e3)
                return b3

            out["boto3_ms"] = stats.summary(guarded(ctx, "boto3 series", boto3_series))
        except ImportError:
            out["boto3_ms"] = {"n": 0, "note": "boto3 not importable"}

        if isinstance(ctx.tools.get("loadgen"), Path):
            out["throughput"] = {}
            relay = None
            if isinstance(ctx.tools.get("relay"), Path):
                try:
                    relay = Relay(ctx.tools["relay"], 64)
                    out["floor"] = {}
                except BenchError as e:
                    out["floor_error"] = str(e)
            else:
                out["floor_error"] = f"relay unavailable: {ctx.tools.get('relay')}"
            try:
                warm_runs(ctx, s, "noop", req, (1, 8, 64), relay, out["throughput"],
                          out.get("floor"))
            finally:
                if relay:
                    relay.stop()
            # The same function on tokio's multi-threaded runtime (bench/rust-fn/src/main.rs):
            # the function's share of a warm invoke's CPU is its own choice of runtime.
            others = s.lambda_health()["environments"]
            create_functions(s, ["noop-mt"], runtime_id, handler, code,
                             env={"BENCH_TOKIO_MULTI_THREAD": "1"})
            out["throughput_mt"] = {}
            warm_runs(ctx, s, "noop-mt", Signed(lambda: s.invoke_request("noop-mt")), (8,),
                      None, out["throughput_mt"], None, others)
        else:
            out["throughput_error"] = f"loadgen unavailable: {ctx.tools.get('loadgen')}"
        if a.profile and shutil.which("strace"):
            out["syscalls_per_invoke"] = count_syscalls(ctx, s, req, 1000 if a.smoke else 3000)
    finally:
        ctx.done(s)
    if a.baseline_bin:
        if not isinstance(ctx.tools.get("loadgen"), Path):
            out["baseline_error"] = f"loadgen unavailable: {ctx.tools.get('loadgen')}"
        else:
            try:
                out["baseline"] = baseline_comparison(ctx)
            except Exception as e:  # noqa: BLE001
                out["baseline_error"] = f"{type(e).__name__}: {e}"
                ctx.results["errors"]["warm (baseline)"] = out["baseline_error"]
                log(f"baseline comparison FAILED: {e}\n{traceback.format_exc()}")
    return out


# What the baseline comparison reports: key, label, value from one round's loadgen runs
# (by concurrency), whether higher is better.
BASELINE_METRICS = (
    ("c1_p50_ms", "warm invoke overhead p50 (c=1)", lambda r: r["1"]["lat_us"]["p50"] / 1e3, False),
    ("c1_p99_ms", "warm invoke overhead p99 (c=1)", lambda r: r["1"]["lat_us"]["p99"] / 1e3, False),
    ("c1_rps", "invokes/s at c=1", lambda r: r["1"]["rps"], True),
    ("c8_rps", "invokes/s at c=8", lambda r: r["8"]["rps"], True),
    ("c8_p50_ms", "latency p50 at c=8", lambda r: r["8"]["lat_us"]["p50"] / 1e3, False),
    ("c8_p99_ms", "latency p99 at c=8", lambda r: r["8"]["lat_us"]["p99"] / 1e3, False),
    ("c8_server_us", "server CPU per invoke at c=8 (µs)",
     lambda r: r["8"]["cpu_cores"]["server"] / r["8"]["rps"] * 1e6 if r["8"]["rps"] else math.nan,
     False),
)
BASELINE_TOLERANCE = 0.05  # "costs Lambda nothing": within 5 %


def baseline_round(ctx: Ctx, binary: Path, label: str) -> dict:
    """One server of `binary`: the no-op function, warmed, then one C-loadgen run at c=1 and
    one at c=8 (each after a short unmeasured run), as the warm section measures them."""
    a = ctx.args
    runtime_id, handler, code = zip_for("provided", ctx, sleeper=True)
    s = ctx.server(binary=binary)
    try:
        create_functions(s, ["noop"], runtime_id, handler, code)
        conn = RawConn(s.host, s.port).connect()
        req = Signed(lambda: s.invoke_request("noop"))
        for _ in range(200):
            inv = timed_invoke(conn, req.fresh())
            if inv.status != 200 or inv.function_error:
                raise BenchError(f"{label}: warm invoke {inv.status} {inv.body[:200]!r}")
        conn.close()
        out = {}
        for c in (1, 8):
            if c > 1:
                prewarm(s, "noop", c)
            loadgen_run(ctx, s, req.fresh(), c, min(1.0, a.warm_seconds))
            out[str(c)] = guarded(ctx, f"{label} c={c}", lambda: loadgen_run(
                ctx, s, req.fresh(), c, a.warm_seconds))
            log(f"{label} c={c}: {out[str(c)]['rps']:.0f} invokes/s, p50 "
                f"{out[str(c)]['lat_us']['p50']} µs, p99 {out[str(c)]['lat_us']['p99']} µs")
        return out
    finally:
        ctx.done(s)


def baseline_comparison(ctx: Ctx) -> dict:
    """This build against `--baseline-bin`, in the same run: rounds of one fresh server of
    each, the order alternating (AB BA AB ...) so that a drift of the machine during the run
    falls on both alike; per metric the median over rounds of each and their ratio."""
    a = ctx.args
    base = Path(a.baseline_bin)
    rounds: dict[str, list] = {"baseline": [], "new": []}
    for i in range(a.baseline_rounds):
        order = (("baseline", base), ("new", ctx.binary))
        if i % 2:
            order = order[::-1]
        for which, binary in order:
            rounds[which].append(baseline_round(
                ctx, binary, f"baseline comparison round {i + 1}/{a.baseline_rounds}, {which}"))
    metrics = {}
    for key, label, get, higher in BASELINE_METRICS:
        b = [get(r) for r in rounds["baseline"]]
        n = [get(r) for r in rounds["new"]]
        mb, mn = stats.median(b), stats.median(n)
        ratio = mn / mb if mb else math.nan
        within = (ratio >= 1 - BASELINE_TOLERANCE) if higher else (ratio <= 1 + BASELINE_TOLERANCE)
        paired = [x / y if y else math.nan for x, y in zip(n, b)]  # within each round
        metrics[key] = {"label": label, "baseline": mb, "new": mn, "ratio": ratio,
                        "paired_ratios": paired,
                        "higher_is_better": higher, "within_5pct": bool(within),
                        "baseline_rounds": b, "new_rounds": n}
    return {"binary": str(base), "version": baseline_version(base), "rounds": a.baseline_rounds,
            "seconds_per_run": a.warm_seconds, "metrics": metrics, "runs": rounds}


def baseline_version(binary: Path) -> str:
    """`--version` of the baseline and, when bench/build-baseline made it, its revision."""
    v = (host.sh(f"{binary} --version") or "?").replace("stratus ", "")
    rev = binary.with_name(binary.name + ".rev")
    if rev.is_file():
        commit, _, subject = rev.read_text().strip().partition(" ")
        v += f" (`{commit[:7]}`: {subject[:72]})"
    return v


def warm_runs(ctx: Ctx, s: Server, name: str, req: Signed, concurrencies: tuple[int, ...],
              relay: Relay | None, out: dict, floor_out: dict | None, others: int = 0):
    """Throughput and latency of function `name` at each concurrency, into `out`; with a
    `relay`, each Stratus run is followed by a run of the floor with the same client and
    request, into `floor_out`, so that their ratio is measured under the same conditions.
    `others`: environments of other functions, not counted as this one's."""
    a = ctx.args
    for c in concurrencies:
        if c > 1:
            prewarm(s, name, c)
        envs = s.lambda_health()["environments"] - others
        # one short unmeasured run so every connection and environment is warm
        loadgen_run(ctx, s, req.fresh(), c, min(1.0, a.warm_seconds))
        runs, floor = [], []
        if c == 8 and a.profile:  # an extra, unmeasured run under `perf record`
            with Profiler(ctx, f"warm-{name}-c{c}-server", [s.pid]):
                loadgen_run(ctx, s, req.fresh(), c, a.warm_seconds)
        for rep in range(a.reps):
            runs.append(guarded(ctx, f"warm {name} c={c} run {rep + 1}", lambda: loadgen_run(
                ctx, s, req.fresh(), c, a.warm_seconds)))
            log(f"warm {name} c={c} rep {rep + 1}/{a.reps}: {runs[-1]['rps']:.0f} invokes/s, "
                f"p50 {runs[-1]['lat_us']['p50']} µs, p99 {runs[-1]['lat_us']['p99']} µs, "
                f"client {runs[-1]['cpu_cores']['client']:.2f} cores, machine "
                f"{runs[-1]['cpu_cores']['machine']:.2f}")
            if relay:
                floor.append(guarded(ctx, f"floor c={c} run {rep + 1}", lambda: relay.run(
                    ctx, req.fresh(), c, a.warm_seconds)))
                log(f"floor c={c} rep {rep + 1}/{a.reps}: {floor[-1]['rps']:.0f} invokes/s, "
                    f"p50 {floor[-1]['lat_us']['p50']} µs")
        out[str(c)] = {"environments": envs, "runs": runs}
        if relay and floor_out is not None:
            floor_out[str(c)] = {"runs": floor}


def count_syscalls(ctx: Ctx, s: Server, req: Signed, n: int) -> dict:
    """`strace -c -f` on the server (all threads) while `n` warm invokes run one after the
    other: system calls per invocation, by name."""
    out_file = ctx.workdir / "strace-warm.txt"
    tracer = subprocess.Popen(["strace", "-c", "-f", "-o", str(out_file), "-p", str(s.pid)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    conn = RawConn(s.host, s.port).connect()
    for _ in range(n):
        conn.request(req.fresh())
    conn.close()
    tracer.send_signal(signal.SIGINT)
    tracer.wait(timeout=60)
    counts = {}
    for line in out_file.read_text().splitlines():
        f = line.split()
        if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
            try:
                counts[f[-1]] = round(int(f[3]) / n, 1)
            except ValueError:
                continue
    text = ", ".join(f"{k} {v:g}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])
                     if v >= 0.5)
    ctx.profiles.append(f"##### strace -c -f on the server: system calls per warm invoke "
                        f"({n} sequential)\n\n{text}; total "
                        f"{sum(counts.values()):.0f}\n")
    return counts


def scale_rep(ctx: Ctx, rep: int) -> dict:
    a = ctx.args
    n = a.scale_n
    runtime_id, handler, code = zip_for("provided", ctx, sleeper=True)
    s = ctx.server()
    try:
        create_functions(s, ["warmup", "scale"], runtime_id, handler, code)
        conn = RawConn(s.host, s.port).connect()
        timed_invoke(conn, s.invoke_request("warmup"))
        conn.close()
        base_envs = s.lambda_health()["environments"]
        b = burst(s, "scale", n, b'{"sleep_ms": 200}', poll_health=True)
        if b.ok != n:
            raise BenchError(f"scale-out: {b.describe_failures()}; "
                             f"server stderr:\n{s.stderr_tail(1500)}")
        all_ms = max(b.done_ms)
        env_n_ms = next((t for t, e, _ in b.health if e - base_envs >= n), math.nan)
        r = {"all_returned_ms": all_ms, "first_returned_ms": min(b.done_ms),
             "last_serving_ms": all_ms - 200.0, "send_ms": b.t_send_ms,
             "environments_at_ms": env_n_ms,
             "envs_per_s": n / (env_n_ms / 1e3) if env_n_ms == env_n_ms else math.nan,
             "health_samples": len(b.health),
             "final_environments": s.lambda_health()["environments"] - base_envs}
        log(f"scale-out rep {rep + 1}/{a.scale_reps}: all {n} returned in {all_ms:.0f} ms; "
            f"{n} environments after {env_n_ms:.0f} ms")
        return r
    finally:
        ctx.done(s)


def section_scale(ctx: Ctx) -> dict:
    a = ctx.args
    reps = [guarded(ctx, f"scale-out rep {rep + 1}", lambda: scale_rep(ctx, rep))
            for rep in range(a.scale_reps)]

    def med(k):
        return stats.median([r[k] for r in reps])

    return {"n": a.scale_n, "hold_ms": 200, "memory_mb": MEMORY_MB, "reps": reps,
            "all_returned_ms": med("all_returned_ms"),
            "last_serving_ms": med("last_serving_ms"),
            "environments_at_ms": med("environments_at_ms"),
            "envs_per_s": med("envs_per_s"),
            "spread_all_returned": stats.spread(r["all_returned_ms"] for r in reps)}


def section_density(ctx: Ctx) -> dict:
    a = ctx.args
    n = a.density_n
    runtime_id, handler, code = zip_for("provided", ctx, sleeper=True)
    s = ctx.server()
    try:
        create_functions(s, ["warmup", "idle"], runtime_id, handler, code)
        conn = RawConn(s.host, s.port).connect()
        timed_invoke(conn, s.invoke_request("warmup"))
        conn.close()
        time.sleep(0.5)
        mem_dir = memory_cgroup_dir(s.cgroup_parent)
        before_envs = {d.name for d in subdirs(mem_dir)}
        helper = s.helper_pid()
        srv0, hlp0 = host.smaps_rollup(s.pid), host.smaps_rollup(helper)
        b = burst(s, "idle", n, b'{"sleep_ms": 50}')
        if b.ok != n:
            raise BenchError(f"density: {b.describe_failures()}; "
                             f"server stderr:\n{s.stderr_tail(1500)}")
        deadline = time.monotonic() + 10
        while s.lambda_health()["invocations_in_flight"] and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)
        srv1, hlp1 = host.smaps_rollup(s.pid), host.smaps_rollup(helper)
        envs = []
        for d in sorted(subdirs(mem_dir)):
            # pool-*: blank sandboxes waiting for a function, not environments.
            if d.name in before_envs or d.name.startswith("pool-"):
                continue
            cg = host.cgroup_memory(d)
            procs = host.cgroup_procs(d)
            init = [p for p in procs if "sandbox-helper" in host.cmdline(p)]
            fn = [p for p in procs if p not in init]
            init_pss = sum(host.smaps_rollup(p).get("Pss", 0) for p in init)
            fn_rss = sum(host.smaps_rollup(p).get("Rss", 0) for p in fn)
            fn_pss = sum(host.smaps_rollup(p).get("Pss", 0) for p in fn)
            fn_anon = sum(host.rss_anon(p) for p in fn)
            envs.append({"usage": cg["usage"], "anon": cg["anon"], "kernel": cg.get("kernel"),
                         "init_pss": init_pss, "fn_rss": fn_rss, "fn_pss": fn_pss,
                         "fn_anon": fn_anon, "procs": len(procs)})
        if len(envs) != n:
            ctx.results["notes"].append(f"density: expected {n} new environment cgroups, found "
                                        f"{len(envs)}")
        k = max(1, len(envs))
        mib = 1024 * 1024
        srv_growth = (srv1.get("Rss", 0) - srv0.get("Rss", 0)) / k
        hlp_growth = (hlp1.get("Rss", 0) - hlp0.get("Rss", 0)) / k
        non_anon = stats.median([e["usage"] - e["anon"] for e in envs])
        init_pss = stats.median([e["init_pss"] for e in envs])
        platform_env = [(e["usage"] - e["anon"]) + e["init_pss"] + srv_growth + hlp_growth
                        for e in envs]
        brief_formula = [e["usage"] - e["fn_rss"] + srv_growth + hlp_growth for e in envs]
        return {
            "n": len(envs),
            "function": "bench/rust-fn (provided.al2023)",
            "memory_mb": MEMORY_MB,
            "platform_mib": stats.median(platform_env) / mib,
            "platform_mib_spread": tuple(v / mib for v in stats.spread(platform_env) or (0, 0)),
            "cgroup_non_anon_mib": non_anon / mib,
            "cgroup_usage_mib": stats.median([e["usage"] for e in envs]) / mib,
            "cgroup_kernel_mib": stats.median([e["kernel"] or 0 for e in envs]) / mib,
            "init_pss_mib": init_pss / mib,
            "server_rss_growth_mib": srv_growth / mib,
            "helper_rss_growth_mib": hlp_growth / mib,
            "server_rss_mib": (srv0.get("Rss", 0) / mib, srv1.get("Rss", 0) / mib),
            "brief_formula_mib": stats.median(brief_formula) / mib,
            "fn_rss_mib": stats.median([e["fn_rss"] for e in envs]) / mib,
            "fn_anon_mib": stats.median([e["fn_anon"] for e in envs]) / mib,
            "fn_pss_mib": stats.median([e["fn_pss"] for e in envs]) / mib,
        }
    finally:
        ctx.done(s)


def section_peers(ctx: Ctx, availability: dict) -> dict:
    a = ctx.args
    if ctx.runtime_dir is None:  # Stratus's Python/Node bootstraps, for their floors
        ctx.done(ctx.server())
    work = ctx.workdir / "peers"
    work.mkdir(exist_ok=True)
    task = work / "task"
    task.mkdir(exist_ok=True)
    (task / "index.py").write_text(PY_HANDLER)
    (task / "index.js").write_text(NODE_HANDLER)
    launchers: dict[str, peers.Launcher | str] = {}
    base = peers.lambda_env("bench", "")
    launchers["floor-provided"] = peers.Floor(work, [str(ctx.fixture_bin)], base, "provided")
    for label, rid, exe, script in (("python", "python3.11", "python3.11", "python/bootstrap.py"),
                                    ("node", "nodejs20.x", "node", "node/bootstrap.js")):
        path = shutil.which(exe, path="/usr/bin:/usr/local/bin:/bin:" + os.environ.get("PATH", ""))
        if path is None or ctx.runtime_dir is None:
            launchers[f"floor-{label}"] = f"not available: {exe} not found"
            continue
        env = dict(base, _HANDLER="index.handler", LAMBDA_TASK_ROOT=str(task),
                   LAMBDA_RUNTIME_DIR=str(ctx.runtime_dir / label),
                   AWS_EXECUTION_ENV=f"AWS_Lambda_{rid}")
        launchers[f"floor-{label}"] = peers.Floor(
            work, [os.path.realpath(path), str(ctx.runtime_dir / script)], env, label)
    fdl = ctx.tools.get("fdlisten")
    if not isinstance(fdl, Path):
        for k in ("unshare", "runc", "podman"):
            launchers[k] = f"not available: fdlisten could not be built ({fdl})"
    else:
        if shutil.which("unshare"):
            launchers["unshare"] = peers.Unshare(work, ctx.fixture_bin, fdl)
        else:
            launchers["unshare"] = "not available: `unshare` (util-linux) not found"
        for k in ("runc", "podman"):
            if a.no_peers_containers:
                launchers[k] = "skipped (--no-peers-containers)"
            elif availability.get(k):
                launchers[k] = f"not available: {availability[k]}"
            else:
                try:
                    if k == "runc":
                        launchers[k] = peers.Runc(work, ctx.fixture_bin, fdl,
                                                  f"stratus-bench-runc-{os.getpid()}")
                    else:
                        launchers[k] = peers.Podman(work, ctx.fixture_bin, fdl,
                                                    f"localhost/stratus-bench-fn:{os.getpid()}")
                except Exception as e:  # noqa: BLE001
                    launchers[k] = f"not available: {str(e).strip()[-300:]}"
    results: dict = {}
    samples: dict[str, list[list[peers.Sample]]] = {k: [] for k in launchers}
    # One unmeasured launch each (page cache, podman's storage), and a peer that fails
    # here is reported as not available instead of failing the run.
    for k, l in launchers.items():
        if isinstance(l, str):
            continue
        try:
            l.once()
        except Exception as e:  # noqa: BLE001
            launchers[k] = f"not available: {e} {l.log_tail()[-300:]}".strip()
            l.close()
    for rep in range(a.reps):  # repetitions interleaved across launchers
        for k, l in launchers.items():
            if isinstance(l, str):
                continue
            count = a.podman_iterations if k == "podman" else a.peer_iterations
            log(f"peers rep {rep + 1}/{a.reps}: {k} × {count}")
            try:
                rep_samples = guarded(ctx, f"peers {k} rep {rep + 1}",
                                      lambda: [l.once() for _ in range(count)])
            except Exception as e:  # noqa: BLE001
                launchers[k] = f"failed during the run: {e} {l.log_tail()[-300:]}".strip()
                l.close()
                continue
            samples[k].append(rep_samples)
    for k, l in launchers.items():
        if isinstance(l, str):
            results[k] = {"unavailable": l}
            continue
        l.close()
        results[k] = {"next_ms": pooled([[x.next_ms for x in r] for r in samples[k]]),
                      "response_ms": pooled([[x.response_ms for x in r] for r in samples[k]])}
    return results


# --- logs -----------------------------------------------------------------------------

LOGS_BATCH_EVENTS = 1000  # events per PutLogEvents batch in the ingestion measurement
LOGS_INGEST_CONFIGS = (  # label, clients, streams
    ("1 client", 1, 1),
    ("4 clients, a stream each", 4, 4),
    ("4 clients, one stream", 4, 1),
)
# The FilterLogEvents data: words that occur only where the harness puts them.
NEEDLE_TERM = "XYZZYNEEDLE"
NEEDLE_LEVEL = "FATAL"
NOTHING_TERM = "QQNOTHINGQQ"
NEEDLES = 5  # of each kind, spread over the data
FILTER_PATTERNS = (  # key, label, pattern, the literal grep looks for
    ("term", "term, matches a few", NEEDLE_TERM, NEEDLE_TERM),
    ("json", "JSON, matches a few", f'{{ $.level = "{NEEDLE_LEVEL}" }}', NEEDLE_LEVEL),
    ("nothing", "term, matches nothing", NOTHING_TERM, NOTHING_TERM),
)


def log_messages(n: int, seed: int, lo: int, hi: int) -> list[str]:
    """`n` varied log messages of `lo`–`hi` bytes, as a service writes them: half text lines
    (time, request id, level, method, path, status, latency, words), half JSON objects.
    Lower-case pseudo-words and the levels DEBUG/INFO/WARN/ERROR, so that none contains the
    needles above."""
    import random
    rng = random.Random(seed)
    vocab = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
             for _ in range(500)]
    levels = ("DEBUG", "INFO", "INFO", "INFO", "WARN", "ERROR")
    out = []
    for i in range(n):
        want = rng.randint(lo, hi)
        rid = "%08x-%04x-%04x" % (rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(16))
        lvl = rng.choice(levels)
        path = "/" + "/".join(rng.choice(vocab) for _ in range(rng.randint(1, 3)))
        status = rng.choice((200, 200, 200, 201, 204, 304, 400, 404, 500))
        ms = rng.randint(0, 2000)
        words = []
        if i % 2:
            doc = {"level": lvl, "requestId": rid, "path": path, "status": status,
                   "latencyMs": ms, "user": f"u{rng.randint(1, 99999)}", "msg": ""}
            base = len(json.dumps(doc, separators=(",", ":")))
            while base + len(" ".join(words)) < want:
                words.append(rng.choice(vocab))
            doc["msg"] = " ".join(words)[:max(1, want - base)]
            out.append(json.dumps(doc, separators=(",", ":")))
        else:
            head = (f"2026-11-24T{rng.randint(0, 23):02}:{rng.randint(0, 59):02}:"
                    f"{rng.randint(0, 59):02}.{rng.randint(0, 999):03}Z {rid} {lvl} GET {path} "
                    f"{status} {ms}ms")
            while len(head) + len(" ".join(words)) + 1 < want:
                words.append(rng.choice(vocab))
            out.append((head + " " + " ".join(words))[:want])
    return out


def put_body(group: str, stream: str, events: list[tuple[int, str]]) -> bytes:
    """A PutLogEvents body; `events` are (timestamp, message already JSON-encoded)."""
    return (f'{{"logGroupName":{json.dumps(group)},"logStreamName":{json.dumps(stream)},'
            f'"logEvents":[' + ",".join(f'{{"timestamp":{t},"message":{m}}}' for t, m in events)
            + "]}").encode()


def segment_files(s: Server) -> list[Path]:
    """Every log segment file of server `s` (`<data>/logs/<group>/<stream>.jsonl*`)."""
    root = s.data_dir / "logs"
    return sorted(p for p in root.rglob("*") if p.is_file() and ".jsonl" in p.name)


def logs_ingest(ctx: Ctx) -> dict:
    """PutLogEvents throughput: the C loadgen replays signed batches of 1,000 events of
    100–200 bytes (one request file per stream), closed loop, from 1 and from 4 clients."""
    a = ctx.args
    msgs = log_messages(LOGS_BATCH_EVENTS * 4, 7, 100, 200)
    out: dict = {"batch_events": LOGS_BATCH_EVENTS, "configs": {}}
    group = "/bench/ingest"
    for label, clients, nstreams in LOGS_INGEST_CONFIGS:
        # A fresh server each (what a run wrote is deleted with it), no size cap in the way.
        s = ctx.server(extra_config="log_group_max_mb = 1000000\n")
        try:
            s.logs("CreateLogGroup", {"logGroupName": group})
            key = f"c{clients}-s{nstreams}"
            files, msg_bytes = [], []
            for k in range(nstreams):
                stream = f"{key}-{k}"
                s.logs("CreateLogStream", {"logGroupName": group, "logStreamName": stream})
                t0 = int(time.time() * 1000) - 60_000
                part = msgs[k * LOGS_BATCH_EVENTS:(k + 1) * LOGS_BATCH_EVENTS]
                body = put_body(group, stream, [(t0 + j, json.dumps(m)) for j, m in enumerate(part)])
                f = ctx.workdir / f"put-{key}-{k}.bin"
                f.write_bytes(s.logs_request("PutLogEvents", body))
                files.append(f)
                msg_bytes.append(sum(len(m.encode()) for m in part))

            def run(seconds):
                return loadgen_files(ctx, s, files, clients, seconds)

            run(min(0.5, a.warm_seconds))  # unmeasured: connections, files, page cache
            runs = []
            for rep in range(a.reps):
                r = guarded(ctx, f"logs ingest {label} run {rep + 1}", lambda: run(a.warm_seconds))
                r["events_per_s"] = r["rps"] * LOGS_BATCH_EVENTS
                r["mb_per_s"] = r["rps"] * (sum(msg_bytes) / len(msg_bytes)) / 1e6
                runs.append(r)
                log(f"logs ingest {label} rep {rep + 1}/{a.reps}: {r['events_per_s']:.0f} "
                    f"events/s, {r['mb_per_s']:.1f} MB/s, batch p50 {r['lat_us']['p50']} µs")
            # What was stored is readable: the last event of a stream comes back.
            last = s.logs("GetLogEvents", {"logGroupName": group, "logStreamName": f"{key}-0",
                                           "limit": 1})
            if not last.get("events"):
                raise BenchError("GetLogEvents found none of the events put")
            out["configs"][key] = {"label": label, "clients": clients, "streams": nstreams,
                                   "message_bytes_per_batch": sum(msg_bytes) / len(msg_bytes),
                                   "stored_bytes": sum(p.stat().st_size for p in segment_files(s)),
                                   "runs": runs}
        finally:
            ctx.done(s)
    return out


def loadgen_files(ctx: Ctx, s: Server, files: list[Path], conns: int, seconds: float) -> dict:
    """`loadgen_run` with one request file per connection (round robin)."""
    before = (host.machine_cpu(), host.proc_cpu_seconds(s.pid))
    r = subprocess.run([str(ctx.tools["loadgen"]), "127.0.0.1", str(s.port), str(conns),
                        str(seconds), *map(str, files)], capture_output=True, text=True,
                       timeout=seconds + 120)
    if not r.stdout.strip():
        raise BenchError(f"loadgen failed ({r.returncode}): {r.stderr[-500:]}")
    doc = json.loads(r.stdout)
    if doc["failed_connections"] or doc["errors"] or not doc["requests"]:
        raise BenchError(f"loadgen saw errors: {doc}; server stderr:\n{s.stderr_tail(1500)}")
    after = (host.machine_cpu(), host.proc_cpu_seconds(s.pid))
    wall = doc["seconds"]
    total = after[0][1] - before[0][1]
    doc["cpu_cores"] = {
        "client": (doc["cpu_user"] + doc["cpu_sys"]) / wall,
        "server": (after[1] - before[1]) / wall,
        "machine": (after[0][0] - before[0][0]) / total * (os.cpu_count() or 1) if total else math.nan,
    }
    return doc


def logs_function(ctx: Ctx) -> dict:
    """Function output to its log group: bench/rust-fn prints N lines (one write each) in one
    invocation; the clock runs from sending the invoke until FilterLogEvents, polled every
    5 ms, shows the last line in `/aws/lambda/<fn>`."""
    a = ctx.args
    n = a.logs_function_lines
    runtime_id, handler, code = zip_for("provided", ctx, sleeper=True)
    s = ctx.server()
    try:
        name = "printer"
        group = f"/aws/lambda/{name}"
        create_functions(s, [name], runtime_id, handler, code)
        conn = RawConn(s.host, s.port, timeout=300).connect()
        poll = RawConn(s.host, s.port, timeout=300).connect()

        def invoke(lines, marker):
            inv = timed_invoke(conn, s.invoke_request(
                name, json.dumps({"print_lines": lines, "marker": marker}).encode()))
            if inv.status != 200 or inv.function_error:
                raise BenchError(f"invoke of {name}: {inv.status} {inv.body[:300]!r}")

        def find(pattern, start_ms, limit=None):
            doc = {"logGroupName": group, "filterPattern": pattern, "startTime": start_ms}
            if limit:
                doc["limit"] = limit
            return s.logs("FilterLogEvents", doc, conn=poll)

        # Warm: the environment exists and its log stream too.
        marker = f"w{secrets_hex()}"
        invoke(10, marker)
        deadline = time.monotonic() + 30
        while not find(f"{marker}end", 0).get("events"):
            if time.monotonic() > deadline:
                raise BenchError(f"the warm-up's last line never reached {group}")
            time.sleep(0.01)

        def one():
            marker = f"m{secrets_hex()}"
            start_ms = int(time.time() * 1000) - 1000
            t0 = time.perf_counter()
            invoke(n, marker)
            t_resp = time.perf_counter() - t0
            deadline = time.monotonic() + 120
            polls = 0
            while True:
                polls += 1
                if find(f"{marker}end", start_ms, 1).get("events"):
                    break
                if time.monotonic() > deadline:
                    raise BenchError(f"{n} lines: the last never reached {group} in 120 s")
                time.sleep(0.005)
            t_vis = time.perf_counter() - t0
            # Every line is there (not timed): page through the lines carrying the marker.
            count, token = 0, None
            while True:
                doc = {"logGroupName": group, "filterPattern": marker, "startTime": start_ms}
                if token:
                    doc["nextToken"] = token
                page = s.logs("FilterLogEvents", doc, conn=poll)
                count += len(page.get("events", []))
                token = page.get("nextToken")
                if not token:
                    break
            if count != n + 1:  # the marker also starts the last line's word
                raise BenchError(f"{group} holds {count} of the {n + 1} lines printed")
            return {"invoke_s": t_resp, "visible_s": t_vis, "polls": polls,
                    "events_per_s": (n + 1) / t_vis}

        runs = []
        for rep in range(a.reps):
            r = guarded(ctx, f"logs function rep {rep + 1}", one)
            runs.append(r)
            log(f"logs function rep {rep + 1}/{a.reps}: {n} lines visible after "
                f"{r['visible_s'] * 1e3:.0f} ms ({r['events_per_s']:.0f} events/s; invoke "
                f"returned after {r['invoke_s'] * 1e3:.0f} ms)")
        conn.close()
        poll.close()
        # The line bench/rust-fn prints: "{i:08} {marker} bench line: lorem ... sed do".
        line_bytes = 8 + 1 + len(marker) + 1 + len(
            "bench line: lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do")
        return {"lines": n, "line_bytes": line_bytes, "runs": runs,
                "events_per_s": stats.median([r["events_per_s"] for r in runs]),
                "visible_s": stats.median([r["visible_s"] for r in runs]),
                "invoke_s": stats.median([r["invoke_s"] for r in runs])}
    finally:
        ctx.done(s)


def secrets_hex() -> str:
    return os.urandom(4).hex()


def logs_filter(ctx: Ctx) -> dict:
    """FilterLogEvents over `--logs-filter-mb` MB of segment files (4 streams, written by
    PutLogEvents in batches of ~1 MB, timestamps 7 days old), paging to the end, against
    `grep -c` and `LC_ALL=C grep -F -c` over the same files; page cache warm for both."""
    import threading
    a = ctx.args
    target = a.logs_filter_mb * 1_000_000
    s = ctx.server(extra_config=f"log_group_max_mb = {max(4096, 4 * a.logs_filter_mb)}\n")
    try:
        group = "/bench/filter"
        streams = [f"app-{k}" for k in range(4)]
        s.logs("CreateLogGroup", {"logGroupName": group})
        for st in streams:
            s.logs("CreateLogStream", {"logGroupName": group, "logStreamName": st})
        pool = [json.dumps(m) for m in log_messages(20_000, 11, 150, 250)]
        # On disk a line is the message JSON-escaped and quoted plus 67 bytes of framing.
        per_event_disk = sum(len(m) for m in pool) / len(pool) + 67
        # Events per batch: PutLogEvents takes 1 MiB, counting 26 bytes per event (escaped
        # lengths here, so with room to spare), less two for the needles.
        per_batch, counted = 0, 0
        while per_batch < 10_000 and counted + len(pool[per_batch]) + 24 < 1_000_000:
            counted += len(pool[per_batch]) + 24
            per_batch += 1
        per_batch -= 2
        est_batches = max(1, math.ceil(target / (per_batch * per_event_disk)))
        needle_at = {min(est_batches - 1, int((k + 0.5) * est_batches / NEEDLES))
                     for k in range(NEEDLES)}
        base_ts = int(time.time() * 1000) - 7 * 86_400_000
        lock = threading.Lock()
        state = {"next": 0, "written": 0, "needles": 0, "error": None}

        def loader(stream: str):
            conn = RawConn(s.host, s.port, timeout=300).connect()
            try:
                while True:
                    with lock:
                        b = state["next"]
                        if b >= est_batches or state["error"]:
                            return
                        state["next"] += 1
                    start = (b * per_batch) % len(pool)
                    msgs = [pool[(start + j) % len(pool)] for j in range(per_batch)]
                    if b in needle_at:
                        msgs[per_batch // 3] = json.dumps(
                            f"2026-11-24T12:00:00.000Z {b:08x} ERROR {NEEDLE_TERM} batch {b} "
                            f"went wrong in stream {stream}")
                        msgs[2 * per_batch // 3] = json.dumps(json.dumps(
                            {"level": NEEDLE_LEVEL, "requestId": f"{b:08x}", "batch": b,
                             "msg": "needle"}, separators=(",", ":")))
                    t0 = base_ts + b * 10_000
                    body = put_body(group, stream, [(t0 + j, m) for j, m in enumerate(msgs)])
                    r = conn.request(s.logs_request("PutLogEvents", body))
                    if r.status != 200 or b"rejectedLogEventsInfo" in r.body:
                        raise BenchError(f"PutLogEvents: {r.status} {r.body[:300]!r}")
                    with lock:
                        state["written"] += len(body)
                        state["needles"] += b in needle_at
            except Exception as e:  # noqa: BLE001
                with lock:
                    state["error"] = e
            finally:
                conn.close()

        log(f"logs filter: writing ~{a.logs_filter_mb} MB of segments ({est_batches} batches "
            f"of {per_batch} events)")
        t0 = time.perf_counter()
        threads = [threading.Thread(target=loader, args=(st,), daemon=True) for st in streams]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        load_s = time.perf_counter() - t0
        if state["error"]:
            raise BenchError(f"loading the filter data: {state['error']}")
        files = segment_files(s)
        disk = sum(p.stat().st_size for p in files)
        log(f"logs filter: {disk / 1e6:.0f} MB in {len(files)} segment files, written in "
            f"{load_s:.1f} s ({disk / 1e6 / load_s:.0f} MB/s through PutLogEvents, 4 clients)")
        out: dict = {"bytes": disk, "files": len(files), "streams": len(streams),
                     "events": est_batches * per_batch, "load_s": load_s,
                     "needles": state["needles"], "patterns": {}}

        def filter_all(pattern: str) -> tuple[int, int]:
            conn = RawConn(s.host, s.port, timeout=600).connect()
            count, pages, token = 0, 0, None
            try:
                while True:
                    doc = {"logGroupName": group, "filterPattern": pattern}
                    if token:
                        doc["nextToken"] = token
                    page = s.logs("FilterLogEvents", doc, conn=conn)
                    pages += 1
                    count += len(page.get("events", []))
                    token = page.get("nextToken")
                    if not token:
                        return count, pages
            finally:
                conn.close()

        def grep(flags: list[str], literal: str, env: dict | None) -> int:
            """Matching lines, summed over the files (`-c -h`: one count per file)."""
            r = subprocess.run(["grep", *flags, "-c", "-h", "--", literal, *map(str, files)],
                               capture_output=True, text=True, env=env, timeout=600)
            if r.returncode not in (0, 1):
                raise BenchError(f"grep {' '.join(flags)} {literal}: {r.stderr[-300:]}")
            return sum(int(x) for x in r.stdout.split())

        c_env = dict(os.environ, LC_ALL="C")
        out["grep_locale"] = os.environ.get("LC_ALL") or os.environ.get("LANG") or "unset (C)"
        for key, label, pattern, literal in FILTER_PATTERNS:
            want = 0 if key == "nothing" else state["needles"]
            tools = {
                "stratus": lambda: filter_all(pattern),
                "grep": lambda: (grep([], literal, None), 0),
                "grep_f_c": lambda: (grep(["-F"], literal, c_env), 0),
            }
            res: dict = {"label": label, "pattern": pattern, "grep_literal": literal,
                         "expected": want}
            for tool, fn in tools.items():
                fn()  # untimed: page cache and the server's own caches warm
                times, found, pages = [], None, 0

                def timed():
                    t = time.perf_counter()
                    r = fn()
                    return time.perf_counter() - t, r

                for rep in range(a.reps):
                    secs, (found, pages) = guarded(ctx, f"logs filter {key} {tool} "
                                                        f"run {rep + 1}", timed)
                    times.append(secs)
                res[tool] = {"seconds": stats.median(times), "runs": times, "found": found,
                             "pages": pages, "gb_per_s": disk / 1e9 / stats.median(times)}
                log(f"logs filter {key} {tool}: {stats.median(times):.3f} s "
                    f"({disk / 1e9 / stats.median(times):.2f} GB/s), {found} found")
            if res["stratus"]["found"] != want:
                ctx.results["notes"].append(
                    f"logs filter: FilterLogEvents `{pattern}` found {res['stratus']['found']} "
                    f"events, {want} were written")
            out["patterns"][key] = res
        return out
    finally:
        ctx.done(s)


def section_logs(ctx: Ctx) -> dict:
    """CloudWatch Logs: ingestion (PutLogEvents, function output) and FilterLogEvents over a
    large group against grep. Each part on a fresh server; a part that fails is reported and
    the others still run."""
    out: dict = {}
    parts = [("filter", logs_filter), ("function", logs_function)]
    if isinstance(ctx.tools.get("loadgen"), Path):
        parts.insert(0, ("ingest", logs_ingest))
    else:
        out["ingest_error"] = f"loadgen unavailable: {ctx.tools.get('loadgen')}"
    for key, fn in parts:
        log(f"logs: {key}")
        try:
            out[key] = fn(ctx)
        except Exception as e:  # noqa: BLE001
            out[f"{key}_error"] = f"{type(e).__name__}: {e}"
            ctx.results["errors"][f"logs ({key})"] = out[f"{key}_error"]
            log(f"logs {key} FAILED: {e}\n{traceback.format_exc()}")
    return out


# --- report ---------------------------------------------------------------------------


def g(d, *path, default=None):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return default
        d = d[p]
    return d


def headline(res: dict) -> dict:
    sec = res["sections"]
    h = {}
    for rt in COLD_RUNTIMES:
        h[f"cold_{rt}_p50_ms"] = g(sec, "cold", rt, "client_ms", "p50")
        h[f"floor:cold_{rt}_p50_ms"] = g(sec, "peers", f"floor-{rt.removesuffix('-zygote')}",
                                         "response_ms", "p50")
    # Stratus's warm figures, and the same for the floor of a warm invoke (bench/c/relay.c).
    for key, prefix in (("throughput", ""), ("floor", "floor:")):
        by_c = g(sec, "warm", key) or {}
        c1 = g(by_c, "1", "runs") or []
        if c1:
            for q in ("p50", "p99"):
                h[f"{prefix}warm_{q}_ms"] = stats.median([r["lat_us"][q] for r in c1]) / 1e3
        rps = [stats.median([r["rps"] for r in v["runs"]]) for v in by_c.values() if v.get("runs")]
        h[f"{prefix}throughput_max_rps"] = max(rps) if rps else None
    h["scale_100_ms"] = g(sec, "scale", "last_serving_ms")
    h["density_mib"] = g(sec, "density", "platform_mib")
    for key, m in (g(sec, "warm", "baseline", "metrics") or {}).items():
        h[f"baseline_ratio:{key}"] = m["ratio"]
    for key, v in (g(sec, "logs", "ingest", "configs") or {}).items():
        h[f"logs_put_{key}_events_per_s"] = stats.median([r["events_per_s"] for r in v["runs"]])
    h["logs_function_events_per_s"] = g(sec, "logs", "function", "events_per_s")
    for key, v in (g(sec, "logs", "filter", "patterns") or {}).items():
        h[f"logs_filter_{key}_gb_per_s"] = g(v, "stratus", "gb_per_s")
        h[f"logs_filter_{key}_x_grep"] = (g(v, "stratus", "seconds") / g(v, "grep", "seconds")
                                          if g(v, "grep", "seconds") else None)
    return h


def render(res: dict, ctx: Ctx) -> str:
    F = stats.fmt
    sec = res["sections"]
    errs = res["errors"]
    m = res["machine"]
    L: list[str] = []
    add = L.append
    add(f"## Results: {res['started']} ({'smoke' if res['smoke'] else 'full'} run)\n")
    add(f"Machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['mem_total']}, kernel {m['kernel']}, "
        f"{m['os']}, cgroups {m['cgroups']}; first touch of fresh memory "
        f"{F(m['first_touch_us_per_page'][0])} µs per 4 KiB page, again "
        f"{F(m['first_touch_us_per_page'][1])} µs. Stratus {res['stratus_version']} "
        f"(`{res['git']}`), release build. Client: {res['client']}. MemorySize {MEMORY_MB} MB "
        f"everywhere. Repetitions: {ctx.args.reps}.\n")

    add("<details><summary>Machine details</summary>\n")
    add("```text")
    add(f"$ nproc\n{m['nproc']}\n$ free -g\n{m['free_g']}\n$ uname -srvm\n{m['uname']}")
    add(f"CPU model: {m['cpu_model']}\n{m['rustc']}; Python {m['python']}; {m['perf']}")
    add("```\n</details>\n")

    # targets
    h = headline(res)
    add("### Targets\n")
    add("| metric | target | measured | |")
    add("|---|---|---|---|")
    for k, (label, limit, text) in TARGETS.items():
        v = h.get(k)
        if v is None:
            add(f"| {label} | {text} | not measured | – |")
            continue
        met = v >= limit if k in HIGHER_IS_BETTER else v <= limit
        unit = {"throughput_max_rps": "/s", "density_mib": " MiB"}.get(k, " ms")
        floor = h.get(f"floor:{k}")
        vs = f" ({stats.ratio(v, floor)} the floor's {F(floor)}{unit})" if floor else ""
        add(f"| {label} | {text} | {F(v)}{unit}{vs} | {'met' if met else '**missed**'} |")
    add("")

    # cold start
    add("### Cold start: invoke → response\n")
    add(f"Client-measured (raw SigV4 request over loopback, signed before the clock starts; "
        f"`LogType=Tail`), one new function per invocation, {ctx.args.cold_iterations} per "
        f"runtime per repetition. `Init Duration` is Stratus's REPORT line (sandbox creation to "
        f"the runtime's first `/next`). Floor: the same runtime process started with plain "
        f"`posix_spawn`, serving one invocation from the harness's own Runtime API. Spread: "
        f"lowest–highest p50 of the repetitions. Python twice: with its own interpreter each "
        f"time (`zygote_pool = 0`), and from a zygote, the harness waiting before each "
        f"invocation until the pool's zygotes are ready (blocked reading their spec).\n")
    add("| runtime | n | p50 ms | p90 ms | p99 ms | p50 spread | Init Duration p50 / p90 / p99 ms "
        "| floor p50 / p99 ms | × floor (p50) |")
    add("|---|---|---|---|---|---|---|---|---|")
    if "cold" in errs:
        add(f"| failed: {errs['cold'][:200]} |||||||||")
    pr = sec.get("peers", {})
    for rt in COLD_RUNTIMES:
        c = g(sec, "cold", rt)
        if not c:
            continue
        cm, im = c["client_ms"], c["init_ms"]
        fl = g(pr, f"floor-{rt.removesuffix('-zygote')}", "response_ms")
        label = c["runtime"] + {"python": " (own interpreter)",
                                "python-zygote": " (from a zygote)"}.get(rt, "")
        add(f"| {label} | {cm['n']} | {F(cm['p50'])} | {F(cm['p90'])} | {F(cm['p99'])} | "
            f"{stats.fmt_spread(stats.spread(cm['rep_p50']))} | {F(im['p50'])} / {F(im['p90'])} / "
            f"{F(im['p99'])} | {F(g(fl, 'p50'))} / {F(g(fl, 'p99'))} | "
            f"{stats.ratio(cm['p50'], g(fl, 'p50'))} |")
    add("")

    # peers
    add("### Cold start against the floor and the peers (provided.al2023, same static binary)\n")
    add("`to /next`: launch → the runtime's first `GET /next` (for Stratus: REPORT `Init "
        "Duration`). `to response`: launch → the runtime posts its response (for Stratus: the "
        "client's invoke → response, which adds the HTTP front door and SigV4). Ratios are "
        "this row's p50 (p99) over the column's.\n")
    rows = []
    c = g(sec, "cold", "provided")
    if c:
        rows.append(("Stratus (invoke API)", c["init_ms"], c["client_ms"]))
    names = {"floor-provided": "floor: posix_spawn", "unshare": "unshare (user,pid,mnt,uts,ipc,net)",
             "runc": "runc run (OCI bundle)", "podman": "podman run --rm (imported image)"}
    for k, label in names.items():
        v = pr.get(k)
        if v is None:
            continue
        if "unavailable" in v:
            rows.append((label, v["unavailable"], None))
        else:
            rows.append((label, v["next_ms"], v["response_ms"]))
    refs = [(k, pr[k]["response_ms"]) for k in names
            if k in pr and "unavailable" not in pr[k]]
    ref_labels = {"floor-provided": "floor", "unshare": "unshare", "runc": "runc", "podman": "podman"}
    add("| approach | n | to /next p50 / p99 ms | to response p50 / p90 / p99 ms | p50 spread | "
        + " | ".join(f"× {ref_labels[k]}" for k, _ in refs) + " |")
    add("|---|---|---|---|---|" + "---|" * len(refs))
    for label, nxt, resp in rows:
        if isinstance(nxt, str):
            add(f"| {label} | – | {nxt} | | |" + " |" * len(refs))
            continue
        cells = [f"{stats.ratio(resp['p50'], r['p50'])} ({stats.ratio(resp['p99'], r['p99'])})"
                 for _, r in refs]
        add(f"| {label} | {resp['n']} | {F(nxt['p50'])} / {F(nxt['p99'])} | {F(resp['p50'])} / "
            f"{F(resp['p90'])} / {F(resp['p99'])} | {stats.fmt_spread(stats.spread(resp['rep_p50']))} | "
            + " | ".join(cells) + " |")
    nrefs = [(k, pr[k]["next_ms"]) for k in names if k in pr and "unavailable" not in pr[k]]
    if rows and nrefs:
        add("")
        add("Init alone (launch → first `/next`), p50 (p99) ratios:\n")
        add("| approach | " + " | ".join(f"× {ref_labels[k]}" for k, _ in nrefs) + " |")
        add("|---|" + "---|" * len(nrefs))
        for label, nxt, resp in rows:
            if isinstance(nxt, str):
                continue
            add(f"| {label} | " + " | ".join(
                f"{stats.ratio(nxt['p50'], r['p50'])} ({stats.ratio(nxt['p99'], r['p99'])})"
                for _, r in nrefs) + " |")
    if "peers" in errs:
        add(f"\nPeers failed: {errs['peers'][:300]}")
    add("")

    # warm
    w = sec.get("warm")
    add("### Warm invoke (no-op handler)\n")
    if "warm" in errs:
        add(f"Failed: {errs['warm'][:500]}\n")
    if w:
        add("Latency over one persistent connection, sequential. The handler takes about a "
            "microsecond, so the round trip is the overhead Stratus adds. `REPORT Duration` is "
            "Stratus's own measure from handing the event to the runtime to its response.\n")
        add("| measurement | n | p50 ms | p90 ms | p99 ms |")
        add("|---|---|---|---|---|")
        tp = w.get("throughput", {})
        fl = w.get("floor", {})

        def lat_row(label, runs):
            n = sum(r["requests"] for r in runs)
            add(f"| {label}, median of {len(runs)} runs | {n} | " + " | ".join(
                F(stats.median([r["lat_us"][q] for r in runs]) / 1e3)
                for q in ("p50", "p90", "p99")) + " |")

        c1 = g(tp, "1", "runs") or []
        if c1:
            lat_row("Invoke, C client (`bench/c/loadgen.c`)", c1)
        f1 = g(fl, "1", "runs") or []
        if f1:
            lat_row("Floor: the same client through `bench/c/relay.c` (four loopback "
                    "messages, three processes, no other work)", f1)
        for key, label in (("python_raw_ms", "Invoke, Python raw socket, replayed signed request"),
                           ("boto3_ms", "Invoke, boto3 `invoke()` (signs every call)"),
                           ("tail_rtt_ms", "Invoke with `LogType=Tail`, Python raw socket"),
                           ("report_duration_ms", "… its REPORT `Duration` (runtime round trip)"),
                           ("rtt_minus_duration_ms", "… client time − REPORT Duration (front door)"),
                           ("health_ms", "`GET /_stratus/health`, Python raw (HTTP floor)")):
            v = w.get(key)
            if v and v.get("n"):
                add(f"| {label} | {v['n']} | {F(v['p50'])} | {F(v['p90'])} | {F(v['p99'])} |")
        add("")
        if c1 and f1:
            r = {q: stats.ratio(h[f"warm_{q}_ms"], h[f"floor:warm_{q}_ms"]) for q in ("p50", "p99")}
            add(f"The floor is what a warm invoke cannot avoid on this machine: the client's "
                f"request to a server process, the event to a function process waiting for it, "
                f"its answer, the response (the Runtime API adds two more messages per invoke, "
                f"the 202 to the posted response and the next `GET /next`, off this path). "
                f"Stratus's warm invoke is {r['p50']} the floor at p50, {r['p99']} at p99, "
                f"runs interleaved with the floor's.\n")
        if w.get("floor_error"):
            add(f"Floor not measured: {w['floor_error']}\n")
        if tp:
            add("Throughput: closed loop, one persistent connection per client thread, "
                f"{ctx.args.warm_seconds:g} s per run, {ctx.args.reps} runs; every connection "
                "has its own warm environment (Lambda runs one invocation per environment at a "
                "time). CPU columns: cores used during the run (of "
                f"{m['nproc']}), from getrusage (client) and /proc (server, helper, function "
                "processes, whole machine). The function is `bench/rust-fn` on tokio's "
                "single-threaded runtime (an environment serves one invocation at a time); the "
                "last row is the same function on the multi-threaded runtime `#[tokio::main]` "
                "gives, which hands every event between two threads.\n")
            add("| concurrency | environments | invokes/s (median) | spread | floor invokes/s "
                "(× floor) | latency p50 / p99 ms | client CPU | server CPU (µs/invoke) | "
                "function CPU (µs/invoke) | machine busy |")
            add("|---|---|---|---|---|---|---|---|---|---|")
            rows = [(c, c, v) for c, v in tp.items()]
            rows += [(c, f"{c}, function on tokio's multi-threaded runtime", v)
                     for c, v in (w.get("throughput_mt") or {}).items()]
            for c, label, v in rows:
                runs = v["runs"]
                cc = {k: stats.median([r["cpu_cores"][k] for r in runs])
                      for k in ("client", "server", "helper", "functions", "machine")}
                rps = stats.median([r["rps"] for r in runs])
                per = {k: cc[k] / rps * 1e6 if rps else math.nan for k in ("server", "functions")}
                fruns = g(fl, c, "runs") or []
                frps = stats.median([r["rps"] for r in fruns])
                floor = f"{F(frps)} ({stats.ratio(rps, frps)})" if fruns else "–"
                add(f"| {label} | {v['environments']} | {F(rps)} | "
                    f"{stats.fmt_spread(stats.spread(r['rps'] for r in runs))} | {floor} | "
                    f"{F(stats.median([r['lat_us']['p50'] for r in runs]) / 1e3)} / "
                    f"{F(stats.median([r['lat_us']['p99'] for r in runs]) / 1e3)} | "
                    f"{cc['client']:.2f} | {cc['server']:.2f} ({per['server']:.0f}) | "
                    f"{cc['functions']:.2f} ({per['functions']:.0f}) | {cc['machine']:.2f} |")
            add("")
        if w.get("throughput_error"):
            add(f"Throughput not measured: {w['throughput_error']}\n")
        render_baseline(w, add, ctx)

    # scale
    sc = sec.get("scale")
    add("### Scale-out from zero\n")
    if "scale" in errs:
        add(f"Failed: {errs['scale'][:500]}\n")
    if sc:
        add(f"{sc['n']} invokes written at once (pre-opened connections, pre-signed) at a fresh "
            f"provided.al2023 function whose handler sleeps {sc['hold_ms']} ms, so each needs its "
            f"own environment; {len(sc['reps'])} repetitions on fresh servers. `serving` = the "
            f"last response − {sc['hold_ms']} ms. Environments counted by polling "
            f"`/_stratus/health` every ~2 ms.\n")
        add("| measurement | median | spread |")
        add("|---|---|---|")
        for key, label, unit in (("all_returned_ms", f"all {sc['n']} returned", "ms"),
                                 ("last_serving_ms", f"all {sc['n']} environments serving", "ms"),
                                 ("environments_at_ms", f"health reports {sc['n']} environments", "ms"),
                                 ("envs_per_s", "environments created per second", "/s")):
            add(f"| {label} | {F(sc[key])} {unit} | "
                f"{stats.fmt_spread(stats.spread(r[key] for r in sc['reps']))} |")
        add("")

    # density
    d = sec.get("density")
    add("### Density: platform memory per idle environment\n")
    if "density" in errs:
        add(f"Failed: {errs['density'][:500]}\n")
    if d:
        add(f"{d['n']} idle environments of one provided.al2023 function. Platform memory per "
            "environment = (the environment cgroup's charge − its anonymous memory, i.e. kernel "
            "and file pages charged to it) + Pss of Stratus's init process in the sandbox + the "
            "growth of the server's and the helper's RSS divided by N. The function process's "
            "own memory is excluded. Medians over the environments.\n")
        add("| component | MiB per environment |")
        add("|---|---|")
        add(f"| **platform total** (spread over environments) | **{F(d['platform_mib'])}** "
            f"({stats.fmt_spread(d['platform_mib_spread'])}) |")
        add(f"| cgroup charge − anon (kernel {F(d['cgroup_kernel_mib'])}) | {F(d['cgroup_non_anon_mib'])} |")
        add(f"| Stratus init process in the sandbox (Pss) | {F(d['init_pss_mib'])} |")
        add(f"| server RSS growth / N (RSS {F(d['server_rss_mib'][0])} → {F(d['server_rss_mib'][1])} MiB) "
            f"| {F(d['server_rss_growth_mib'])} |")
        add(f"| helper RSS growth / N | {F(d['helper_rss_growth_mib'])} |")
        add(f"| (excluded) function process: RSS / Pss / anon | {F(d['fn_rss_mib'])} / "
            f"{F(d['fn_pss_mib'])} / {F(d['fn_anon_mib'])} |")
        add("")
    render_logs(res, add, ctx)
    if res["notes"]:
        add("Notes: " + "; ".join(res["notes"]) + "\n")
    return "\n".join(L) + "\n"


def render_logs(res: dict, add, ctx: Ctx):
    F = stats.fmt
    lg = res["sections"].get("logs")
    if lg is None and "logs" not in res["errors"]:
        return
    add("### CloudWatch Logs\n")
    if "logs" in res["errors"]:
        add(f"Failed: {res['errors']['logs'][:500]}\n")
    if not lg:
        return
    ing, fn, flt = lg.get("ingest"), lg.get("function"), lg.get("filter")
    add("Ingestion. PutLogEvents: signed raw requests (JSON 1.1) replayed by the C loadgen, "
        f"closed loop, one persistent connection per client, batches of "
        f"{LOGS_BATCH_EVENTS:,} events of 100–200 bytes (a mix of text lines and JSON "
        f"objects), {ctx.args.warm_seconds:g} s per run, {ctx.args.reps} runs, a fresh server per "
        "row; each batch is on disk (written and fsynced) when answered. MB/s counts the "
        "events' message bytes. Function output: `bench/rust-fn` prints N lines of ~100 bytes "
        "(one `println!`, so one write, each) in one warm invocation; the clock runs from "
        "sending the invoke until FilterLogEvents, polled every 5 ms, shows the last line in "
        "`/aws/lambda/<fn>` (every line is then checked to be there).\n")
    add("| writer | events/s (median) | spread | MB/s | batches/s | batch latency p50 / p99 ms "
        "| server CPU (µs/event) | client CPU |")
    add("|---|---|---|---|---|---|---|---|")
    if ing:
        for v in ing["configs"].values():
            runs = v["runs"]
            eps = stats.median([r["events_per_s"] for r in runs])
            srv = stats.median([r["cpu_cores"]["server"] for r in runs])
            add(f"| PutLogEvents, {v['label']} | {F(eps)} | "
                f"{stats.fmt_spread(stats.spread(r['events_per_s'] for r in runs))} | "
                f"{F(stats.median([r['mb_per_s'] for r in runs]))} | "
                f"{F(stats.median([r['rps'] for r in runs]))} | "
                f"{F(stats.median([r['lat_us']['p50'] for r in runs]) / 1e3)} / "
                f"{F(stats.median([r['lat_us']['p99'] for r in runs]) / 1e3)} | "
                f"{F(srv / eps * 1e6 if eps else math.nan)} | "
                f"{stats.median([r['cpu_cores']['client'] for r in runs]):.2f} |")
    for k in ("ingest_error",):
        if lg.get(k):
            add(f"| PutLogEvents: failed: {lg[k][:300]} |||||||")
    if fn:
        runs = fn["runs"]
        add(f"| function printing {fn['lines']:,} lines, to visible in its group | "
            f"{F(fn['events_per_s'])} | "
            f"{stats.fmt_spread(stats.spread(r['events_per_s'] for r in runs))} | "
            f"{F(fn['events_per_s'] * fn['line_bytes'] / 1e6)} | – | last line visible after "
            f"{F(fn['visible_s'] * 1e3)} ms (invoke returned after {F(fn['invoke_s'] * 1e3)} ms) "
            f"| – | – |")
    if lg.get("function_error"):
        add(f"| function output: failed: {lg['function_error'][:300]} |||||||")
    add("")
    add("#### FilterLogEvents against grep\n")
    if lg.get("filter_error"):
        add(f"Failed: {lg['filter_error'][:500]}\n")
    if flt:
        add(f"One log group, {flt['streams']} streams, {F(flt['bytes'] / 1e9, 2)} GB of segment "
            f"files ({flt['files']} files, {flt['events']:,} events of 150–250 bytes, text lines "
            f"and JSON objects), written with PutLogEvents in ~1 MB batches from "
            f"{flt['streams']} clients ({F(flt['bytes'] / 1e6 / flt['load_s'])} MB/s on disk), "
            f"timestamps a week old. FilterLogEvents over the whole group, every page to the "
            f"end; grep over the same files (`grep -c -h LITERAL <files>`, locale "
            f"{flt['grep_locale']}; and with `LC_ALL=C grep -F`), the literal being the word "
            f"the pattern needs. Each run once untimed first (page cache warm for both), then "
            f"the median of {ctx.args.reps}. × grep: FilterLogEvents' time over grep's.\n")
        add("| pattern | found (written) | pages | FilterLogEvents s | GB/s | grep -c s (GB/s) | "
            "LC_ALL=C grep -F -c s (GB/s) | × grep -c | × grep -F |")
        add("|---|---|---|---|---|---|---|---|---|")
        for v in flt["patterns"].values():
            st, g1, g2 = v["stratus"], v["grep"], v["grep_f_c"]
            add(f"| {v['label']}: `{v['pattern']}` | {st['found']} ({v['expected']}; grep "
                f"{g1['found']}) | {st['pages']} | {F(st['seconds'])} | {F(st['gb_per_s'])} | "
                f"{F(g1['seconds'])} ({F(g1['gb_per_s'])}) | {F(g2['seconds'])} "
                f"({F(g2['gb_per_s'])}) | {stats.ratio(st['seconds'], g1['seconds'])} | "
                f"{stats.ratio(st['seconds'], g2['seconds'])} |")
        add("")


def render_baseline(w: dict, add, ctx: Ctx):
    F = stats.fmt
    bl = w.get("baseline")
    if not bl and not w.get("baseline_error"):
        return
    add("#### This build against a baseline build (`--baseline-bin`)\n")
    if w.get("baseline_error"):
        add(f"Failed: {w['baseline_error'][:500]}\n")
    if not bl:
        return
    add(f"Baseline: Stratus {bl['version']}, `{bl['binary']}`. {bl['rounds']} rounds, each one "
        f"fresh server of each build, in alternating order (baseline first in odd rounds, this "
        f"build first in even ones), the same function (`bench/rust-fn`) and settings: 200 "
        f"warm-up invokes, then one C-loadgen run of {bl['seconds_per_run']:g} s at c=1 and "
        f"one at c=8 (8 environments), each after a short unmeasured run. Medians over the "
        f"rounds; ratio = this build / baseline (per-round ratios: lowest–highest of the two "
        f"builds' ratio within one round); within 5 %: the ratio of medians at most 1.05 "
        f"(latency, CPU) or at least 0.95 (invokes/s).\n")
    add("| metric | baseline | this build | this / baseline | per-round ratios | baseline's "
        "rounds | this build's rounds | within 5 % |")
    add("|---|---|---|---|---|---|---|---|")
    for key, m in bl["metrics"].items():
        r = m["ratio"]
        add(f"| {m['label']} | {F(m['baseline'])} | {F(m['new'])} | "
            f"{'–' if r != r else f'{r:.3f}'} | "
            f"{stats.fmt_spread(stats.spread(m['paired_ratios']), 3)} | "
            f"{stats.fmt_spread(stats.spread(m['baseline_rounds']))} "
            f"| {stats.fmt_spread(stats.spread(m['new_rounds']))} | "
            f"{'yes' if m['within_5pct'] else '**no**'} |")
    add("")


def update_benchmarks_md(body: str):
    generated = f"{BEGIN}\n{body}\n{END}"
    if BENCHMARKS_MD.exists():
        text = BENCHMARKS_MD.read_text()
        if BEGIN in text and END in text:
            pre, rest = text.split(BEGIN, 1)
            _, post = rest.split(END, 1)
            BENCHMARKS_MD.write_text(pre + generated + post)
            return
        BENCHMARKS_MD.write_text(text.rstrip() + "\n\n" + generated + "\n")
        return
    BENCHMARKS_MD.write_text("# Benchmarks\n\nRun `bench/run` to reproduce.\n\n" + generated + "\n")


def main() -> int:
    args = parse_args()
    ctx = Ctx(args)
    started = datetime.datetime.now(datetime.timezone.utc)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    res = ctx.results
    res["started"] = started.strftime("%Y-%m-%d %H:%M UTC")
    res["smoke"] = args.smoke
    mach = host.machine()
    mach["mem_total"] = next((f"{l.split()[1]} GiB RAM" for l in mach["free_g"].splitlines()
                              if l.startswith("Mem:")), "?")
    mach["first_touch_us_per_page"] = host.first_touch_cost()
    res["machine"] = mach
    res["git"] = (host.sh(f"git -C {REPO} rev-parse --short HEAD") or "?") + \
        (" + uncommitted changes" if host.sh(f"git -C {REPO} status --porcelain -- crates Cargo.lock")
         else "")
    res["stratus_version"] = (host.sh(f"{args.stratus_bin} --version") or "?").replace(
        "stratus ", "")
    res["client"] = ("raw SigV4-signed HTTP/1.1 over loopback (Python sockets; the C loadgen for "
                     "throughput and warm latency); boto3 shown once for comparison")
    res["settings"] = {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool, list))}
    failed = False
    rc = 0

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        if not ctx.binary.is_file():
            raise BenchError(f"{ctx.binary} not found: run `cargo build --release -p stratus`")
        if args.baseline_bin and not Path(args.baseline_bin).is_file():
            raise BenchError(f"--baseline-bin {args.baseline_bin} not found (bench/build-baseline "
                             f"REV builds one)")
        if os.geteuid() != 0:
            log("not root: Stratus cannot create sandboxes without root; Stratus sections will fail")
        ctx.fixture_bin = build_rust_fn(FIXTURE, "stratus-e2e-rust-fn")
        ctx.bench_fn_bin = build_rust_fn(BENCH_FN, "stratus-bench-fn")
        ctx.tools = build_tools()
        for k, v in ctx.tools.items():
            if not isinstance(v, Path):
                log(f"{k}: {v}")
        availability = {}
        if "peers" in args.sections and not args.no_peers_containers:
            availability = host.ensure_packages({"runc": "runc", "podman": "podman"},
                                                not args.no_install, log)
        for name in SECTIONS:
            if name not in args.sections:
                continue
            log(f"=== {name}")
            t = time.monotonic()
            try:
                if name == "peers":
                    res["sections"][name] = section_peers(ctx, availability)
                elif name == "density":
                    res["sections"][name] = guarded(ctx, "density", lambda: section_density(ctx))
                else:
                    res["sections"][name] = globals()[f"section_{name}"](ctx)
            except KeyboardInterrupt:
                raise
            except Exception as e:  # noqa: BLE001
                failed = True
                res["errors"][name] = f"{type(e).__name__}: {e}"
                log(f"{name} FAILED: {e}\n{traceback.format_exc()}")
            log(f"=== {name} took {time.monotonic() - t:.0f} s")
        if ctx.leaky_stops:
            res["notes"].append(
                f"after {ctx.leaky_stops} of {ctx.stops} server stops (SIGTERM) Stratus left "
                f"{ctx.leaked_cgroups} empty environment cgroup directories behind; the harness "
                f"removed them")
        res["settle_waits_s"] = ctx.settle_waits
        if ctx.retried:
            res["notes"].append(f"{ctx.retried} measurements were repeated because other "
                                f"processes used the CPU meanwhile")
        res["headline"] = headline(res)
        body = render(res, ctx)
        profiles = ""
        if ctx.profiles:
            profiles = "\n#### Profiles (--profile)\n\n" + "\n".join(ctx.profiles)
    except KeyboardInterrupt:
        log("interrupted")
        ctx.shutdown()
        return 130
    except Exception as e:  # noqa: BLE001
        log(f"no table could be produced: {e}\n{traceback.format_exc()}")
        ctx.shutdown()
        return 2
    finally:
        pass
    ctx.shutdown()
    RESULTS.mkdir(parents=True, exist_ok=True)
    md_path = RESULTS / f"{stamp}{'-smoke' if args.smoke else ''}.md"
    md_path.write_text(f"# Stratus benchmark {res['started']}\n\n{body}{profiles}")
    (RESULTS / f"{stamp}{'-smoke' if args.smoke else ''}.json").write_text(
        json.dumps(res, indent=2, default=str))
    print(body + profiles)
    log(f"written {md_path}")
    upd = args.update_benchmarks
    failed = failed or bool(res["errors"])
    if upd == "yes" or (upd == "auto" and not args.smoke and not failed
                        and set(args.sections) >= {"cold", "warm", "scale", "density", "peers"}):
        update_benchmarks_md(body)
        log(f"updated {BENCHMARKS_MD}")
    if failed:
        log("some Stratus measurements failed: " + "; ".join(res["errors"]))
        rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
