"""Invoke, end to end: functions really run in execution environments, for each runtime the
host offers (python3.11 with Stratus's bootstrap, nodejs20.x, and provided.al2023 whose
`bootstrap` is a Python script speaking the Runtime API with urllib).

The handlers live in fixtures/invoke/ (app.py, app.js); fixtures/provided_bootstrap.py is the
custom runtime. Every test starts its own server with its own cgroup parent.
"""

from __future__ import annotations

import base64
import datetime
import io
import json
import math
import re
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import botocore.exceptions
import pytest

from helpers import (DEFAULT_ACCOUNT, FAST_WAIT, ROLE, create_function, health, invoke,
                     make_zip, update_configuration, wait_until)

FIXTURES = Path(__file__).parent / "fixtures"
REGION = "us-east-1"
SIX_MB = 6 * 1024 * 1024


@dataclass(frozen=True)
class Rt:
    """One runtime under test: its identifier and the code package of the handlers."""
    key: str
    runtime: str
    files: dict
    execution_env: str | None  # AWS_EXECUTION_ENV, absent for provided.*
    # Error types the handler `fail` raises in this runtime's language.
    fail_type: str

    def create(self, lam, name: str, handler: str, **kw) -> dict:
        return create_function(lam, name, self.files, runtime=self.runtime,
                               handler=f"app.{handler}", **kw)


def _read(name: str) -> str:
    return (FIXTURES / name).read_text()


RUNTIMES = {
    "python": Rt("python", "python3.11", {"app.py": _read("invoke/app.py")},
                 "AWS_Lambda_python3.11", "ValueError"),
    "node": Rt("node", "nodejs20.x", {"app.js": _read("invoke/app.js")},
               "AWS_Lambda_nodejs20.x", "TypeError"),
    "provided": Rt("provided", "provided.al2023",
                   {"bootstrap": _read("provided_bootstrap.py"), "app.py": _read("invoke/app.py")},
                   None, "ValueError"),
}


@pytest.fixture(params=list(RUNTIMES), ids=list(RUNTIMES))
def rt(request) -> Rt:
    return RUNTIMES[request.param]


def wait_environments(server, n: int, timeout: float = 10):
    """Waits until health reports `n` live environments."""
    seen = []

    def done():
        seen.append(health(server)["services"]["lambda"]["environments"])
        return seen[-1] == n

    try:
        wait_until(done, timeout=timeout, what=f"{n} live environments")
    except AssertionError as e:
        raise AssertionError(f"{e}; health said {seen[-1]} environments") from None


def function_arn(name: str, qualifier: str | None = None) -> str:
    base = f"arn:aws:lambda:{REGION}:{DEFAULT_ACCOUNT}:function:{name}"
    return f"{base}:{qualifier}" if qualifier else base


# --- log framing --------------------------------------------------------------------------

REPORT_RE = re.compile(
    r"REPORT RequestId: (?P<id>[0-9a-f-]+)\tDuration: (?P<duration>\d+\.\d{2}) ms"
    r"\tBilled Duration: (?P<billed>\d+) ms\tMemory Size: (?P<memory>\d+) MB"
    r"\tMax Memory Used: (?P<used>\d+) MB(?:\tInit Duration: (?P<init>\d+\.\d{2}) ms)?$")


@dataclass
class Framed:
    start: int
    end: int
    report: re.Match
    lines: list[str]

    def between(self) -> list[str]:
        """The function's own lines: after START, before END."""
        return self.lines[self.start + 1:self.end]


def framing(log: str, request_id: str, memory: int = 128) -> Framed:
    """Checks the START / END / REPORT lines of one invocation's log and returns them."""
    assert log.endswith("\n"), f"log tail does not end with a newline: {log!r}"
    lines = log.splitlines()
    start_line = f"START RequestId: {request_id} Version: $LATEST"
    end_line = f"END RequestId: {request_id}"
    assert lines.count(start_line) == 1, f"expected one {start_line!r} in {lines}"
    assert lines.count(end_line) == 1, f"expected one {end_line!r} in {lines}"
    start, end = lines.index(start_line), lines.index(end_line)
    assert start < end
    assert end == len(lines) - 2, f"END must be followed only by REPORT: {lines}"
    report = REPORT_RE.match(lines[-1])
    assert report, f"REPORT line malformed: {lines[-1]!r}"
    assert report["id"] == request_id
    assert int(report["memory"]) == memory
    duration = float(report["duration"])
    billed = int(report["billed"])
    assert duration >= 0
    # Billed is the duration rounded up to the next millisecond (plus, at most, the init).
    assert billed >= math.ceil(duration - 0.01), report.group(0)
    extra = math.ceil(float(report["init"])) if report["init"] else 0
    assert billed <= math.ceil(duration) + extra + 1, report.group(0)
    assert 1 <= int(report["used"]) <= memory, report.group(0)
    if report["init"]:
        assert float(report["init"]) > 0
    return Framed(start, end, report, lines)


# --- sync invoke, context, environment ------------------------------------------------------


def test_invoke_sees_context_and_environment(exec_server, exec_lam, rt):
    name = f"ctx-{rt.key}"
    rt.create(exec_lam, name, "describe", MemorySize=256, Timeout=7,
              Environment={"Variables": {"GREETING": "hello", "SPACED_VALUE": "a b=c;d",
                                           "UNICODE_VALUE": "h\u00e9llo \u2603"}})
    event = {"k": [1, "two", None, {"deep": True}], "unicode": "h\u00e9llo \u2603"}
    before = datetime.datetime.now(datetime.timezone.utc).date()
    inv = invoke(exec_lam, name, event)
    assert inv.status == 200
    assert inv.function_error is None, inv.raw
    assert inv.executed_version == "$LATEST"
    doc = inv.payload
    assert doc["event"] == event

    ctx = doc["context"]
    assert ctx["aws_request_id"] == inv.request_id, "x-amzn-RequestId != context request id"
    assert ctx["function_name"] == name
    assert ctx["function_version"] == "$LATEST"
    assert ctx["invoked_function_arn"] == function_arn(name)
    assert int(ctx["memory_limit_in_mb"]) == 256
    assert ctx["log_group_name"] == f"/aws/lambda/{name}"
    assert 0 < ctx["remaining_ms"] <= 7000

    env = doc["env"]
    assert env["GREETING"] == "hello"
    assert env["SPACED_VALUE"] == "a b=c;d"
    assert env["UNICODE_VALUE"] == "h\u00e9llo \u2603"
    assert inv.log is None, "LogResult without LogType=Tail"
    assert env["_HANDLER"] == "app.describe"
    assert env["LAMBDA_TASK_ROOT"] == "/var/task"
    assert env["LAMBDA_RUNTIME_DIR"] == "/var/runtime"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == name
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == f"/aws/lambda/{name}"
    stream = env["AWS_LAMBDA_LOG_STREAM_NAME"]
    m = re.fullmatch(r"(\d{4})/(\d{2})/(\d{2})/\[\$LATEST\]([0-9a-f]{32})", stream)
    assert m, f"log stream name {stream!r}"
    day = datetime.date(int(m[1]), int(m[2]), int(m[3]))
    assert before <= day <= datetime.datetime.now(datetime.timezone.utc).date()
    assert ctx["log_stream_name"] == stream
    assert env["AWS_REGION"] == REGION
    assert env["AWS_DEFAULT_REGION"] == REGION
    if rt.execution_env is None:
        assert "AWS_EXECUTION_ENV" not in env
    else:
        assert env["AWS_EXECUTION_ENV"] == rt.execution_env
    assert env["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand"
    assert env.get("_X_AMZN_TRACE_ID", "").startswith("Root=1-"), env.get("_X_AMZN_TRACE_ID")
    assert env["TZ"] == ":UTC"
    assert env["LANG"] == "en_US.UTF-8"
    assert "/usr/bin" in env["PATH"].split(":") or "/usr/bin/" in env["PATH"].split(":")
    assert "/opt/lib" in env["LD_LIBRARY_PATH"].split(":")
    assert env["AWS_LAMBDA_RUNTIME_API"] == "127.0.0.1:9001"
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9001"
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        assert env.get(key), f"{key} missing"
    # The function gets its own session credentials, never the server's root secret.
    assert env["AWS_SECRET_ACCESS_KEY"] != exec_server.credentials["aws_secret_access_key"]

    # Invoked through a qualifier, the runtime reports the qualified ARN.
    inv2 = invoke(exec_lam, name, {}, Qualifier="$LATEST")
    assert inv2.function_error is None, inv2.raw
    assert inv2.executed_version == "$LATEST"
    assert inv2.payload["context"]["invoked_function_arn"] == function_arn(name, "$LATEST")
    assert inv2.payload["context"]["aws_request_id"] == inv2.request_id
    assert inv2.request_id != inv.request_id


def test_empty_payload_is_an_empty_object(exec_lam):
    rt = RUNTIMES["python"]
    rt.create(exec_lam, "empty", "describe")
    resp = exec_lam.invoke(FunctionName="empty")
    assert resp["StatusCode"] == 200
    assert json.loads(resp["Payload"].read())["event"] == {}


def test_health_reports_execution_ready(exec_server):
    doc = health(exec_server)
    assert doc["services"]["lambda"]["execution"] == "ready"
    assert doc["services"]["lambda"]["environments"] == 0


# --- errors -------------------------------------------------------------------------------


def test_handler_error(exec_lam, rt):
    name = f"fail-{rt.key}"
    rt.create(exec_lam, name, "fail")
    inv = invoke(exec_lam, name, {"message": "bad input 42"}, tail=True)
    assert inv.status == 200
    assert inv.function_error == "Unhandled"
    assert inv.executed_version == "$LATEST"
    err = inv.payload
    assert err["errorType"] == rt.fail_type
    assert err["errorMessage"] == "bad input 42"
    if rt.key == "python":
        assert set(err) == {"errorMessage", "errorType", "requestId", "stackTrace"}, err
        assert err["requestId"] == inv.request_id
        assert isinstance(err["stackTrace"], list) and err["stackTrace"], err
    elif rt.key == "node":
        assert set(err) == {"errorType", "errorMessage", "trace"}, err
        assert isinstance(err["trace"], list)
        assert err["trace"][0] == "TypeError: bad input 42"
    else:
        # A custom runtime's error document reaches the caller as it posted it.
        assert set(err) == {"errorMessage", "errorType", "stackTrace"}, err
    framing(inv.log, inv.request_id)

    # A handled error leaves the environment in service: the next invocation is warm.
    again = invoke(exec_lam, name, {"message": "second"}, tail=True)
    assert again.function_error == "Unhandled"
    assert again.payload["errorMessage"] == "second"
    f = framing(again.log, again.request_id)
    assert f.report["init"] is None, "a handler error must not cost the environment"


def test_node_callback_and_promise_handlers(exec_lam):
    rt = RUNTIMES["node"]
    rt.create(exec_lam, "cb-ok", "callbackOk")
    rt.create(exec_lam, "cb-err", "callbackError")
    rt.create(exec_lam, "promise", "promise")
    ok = invoke(exec_lam, "cb-ok", {"a": 1})
    assert ok.function_error is None, ok.raw
    assert ok.payload == {"via": "callback", "echo": {"a": 1}}
    prom = invoke(exec_lam, "promise", {"b": 2})
    assert prom.function_error is None, prom.raw
    assert prom.payload == {"via": "promise", "echo": {"b": 2}}
    bad = invoke(exec_lam, "cb-err", {})
    assert bad.function_error == "Unhandled"
    assert bad.payload["errorType"] == "RangeError"
    assert bad.payload["errorMessage"] == "callback boom"


def test_init_error_module_not_found(exec_server, exec_lam, rt):
    name = f"nomod-{rt.key}"
    create_function(exec_lam, name, rt.files, runtime=rt.runtime, handler="nosuchmodule.handler")
    inv = invoke(exec_lam, name, {}, tail=True)
    assert inv.status == 200
    assert inv.function_error == "Unhandled"
    assert inv.payload["errorType"] == "Runtime.ImportModuleError", inv.payload
    assert "nosuchmodule" in inv.payload["errorMessage"]
    # Each invocation tries init again, and fails the same way (it does not hang).
    again = invoke(exec_lam, name, {})
    assert again.function_error == "Unhandled"
    assert again.payload["errorType"] == "Runtime.ImportModuleError"
    # The failed environments are gone (their exit is seen a moment after the answer).
    wait_environments(exec_server, 0)
    # Fixing the handler fixes the function.
    update_configuration(exec_lam, name, Handler="app.describe")
    fixed = invoke(exec_lam, name, {"x": 1})
    assert fixed.function_error is None, fixed.raw
    assert fixed.payload["event"] == {"x": 1}


def test_init_error_handler_not_found(exec_lam, rt):
    name = f"nohandler-{rt.key}"
    rt.create(exec_lam, name, "no_such_function")
    inv = invoke(exec_lam, name, {})
    assert inv.function_error == "Unhandled"
    assert inv.payload["errorType"] == "Runtime.HandlerNotFound", inv.payload
    assert "no_such_function" in inv.payload["errorMessage"]


def test_python_syntax_error_is_reported(exec_lam):
    create_function(exec_lam, "syntax", {"app.py": "def handler(event, context)\n    return 1\n"},
                    runtime="python3.11", handler="app.handler")
    inv = invoke(exec_lam, "syntax", {})
    assert inv.function_error == "Unhandled"
    assert inv.payload["errorType"] == "Runtime.UserCodeSyntaxError", inv.payload


def _zip_with_modes(files: dict[str, tuple[str, int]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, (content, mode) in files.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.external_attr = (0o100000 | mode) << 16
            zf.writestr(info, content)
    return buf.getvalue()


def test_provided_without_bootstrap_is_an_invalid_entrypoint(exec_lam):
    create_function(exec_lam, "noboot", {"app.py": _read("invoke/app.py")},
                    runtime="provided.al2023", handler="app.describe")
    inv = invoke(exec_lam, "noboot", {})
    assert inv.status == 200
    assert inv.function_error == "Unhandled"
    assert inv.payload["errorType"] == "Runtime.InvalidEntrypoint", inv.payload


def test_provided_bootstrap_not_executable_is_an_invalid_entrypoint(exec_lam):
    code = _zip_with_modes({"bootstrap": (_read("provided_bootstrap.py"), 0o644),
                            "app.py": (_read("invoke/app.py"), 0o644)})
    exec_lam.create_function(FunctionName="noexec", Runtime="provided.al2023",
                             Role=ROLE, Handler="app.describe",
                             Code={"ZipFile": code})
    exec_lam.get_waiter("function_active_v2").wait(FunctionName="noexec", WaiterConfig=FAST_WAIT)
    inv = invoke(exec_lam, "noexec", {})
    assert inv.function_error == "Unhandled"
    assert inv.payload["errorType"] == "Runtime.InvalidEntrypoint", inv.payload


def test_provided_bootstrap_exiting_during_init(exec_server, exec_lam):
    create_function(exec_lam, "initexit",
                    {"bootstrap": "#!/bin/sh\necho 'init is failing' >&2\nexit 2\n"},
                    runtime="provided.al2023", handler="whatever")
    inv = invoke(exec_lam, "initexit", {}, tail=True)
    assert inv.function_error == "Unhandled"
    assert inv.payload["errorType"] == "Runtime.ExitError", inv.payload
    assert "exit status 2" in inv.payload["errorMessage"]
    assert "init is failing" in inv.log
    wait_environments(exec_server, 0)


def test_timeout(exec_server, exec_lam, rt):
    name = f"timeout-{rt.key}"
    rt.create(exec_lam, name, "sleep", Timeout=1)
    first = invoke(exec_lam, name, {"seconds": 0})
    assert first.function_error is None, first.raw
    token = first.payload["token"]

    inv = invoke(exec_lam, name, {"seconds": 5}, tail=True)
    assert inv.status == 200
    assert inv.function_error == "Unhandled"
    assert inv.payload["errorType"] == "Sandbox.Timedout", inv.payload
    assert "Task timed out after 1.00 seconds" in inv.payload["errorMessage"]
    assert inv.seconds < 3.5, f"the timeout answered after {inv.seconds:.1f}s, not ~1s"
    assert "Task timed out after 1.00 seconds" in inv.log
    duration = float(framing(inv.log, inv.request_id).report["duration"])
    assert 990 <= duration < 2500, f"REPORT Duration {duration} ms for a 1 s timeout"

    # The timed-out environment is gone: the next invocation gets a fresh one, and works.
    after = invoke(exec_lam, name, {"seconds": 0}, tail=True)
    assert after.function_error is None, after.raw
    assert after.payload["token"] != token
    assert framing(after.log, after.request_id).report["init"] is not None
    wait_environments(exec_server, 1)  # the killed one is gone for good


def test_out_of_memory(exec_server, exec_lam, rt):
    name = f"oom-{rt.key}"
    rt.create(exec_lam, name, "oom", MemorySize=128, Timeout=30)
    inv = invoke(exec_lam, name, {"mb": 300}, tail=True)
    assert inv.status == 200
    assert inv.function_error == "Unhandled", inv.raw
    assert inv.payload["errorType"] == "Runtime.OutOfMemory", inv.payload
    f = framing(inv.log, inv.request_id)
    assert int(f.report["used"]) >= 100, f.report.group(0)
    # The next invocation works, in a new environment.
    after = invoke(exec_lam, name, {"mb": 10})
    assert after.function_error is None, after.raw
    assert after.payload == {"allocated_mb": 10}
    wait_environments(exec_server, 1)


def test_runtime_exit_error(exec_server, exec_lam, rt):
    name = f"exit-{rt.key}"
    rt.create(exec_lam, name, "exit")
    token = invoke(exec_lam, name, {}).payload["token"]
    inv = invoke(exec_lam, name, {"code": 3}, tail=True)
    assert inv.status == 200
    assert inv.function_error == "Unhandled"
    assert inv.payload["errorType"] == "Runtime.ExitError", inv.payload
    assert "exit status 3" in inv.payload["errorMessage"]
    assert "exiting now" in inv.log
    framing(inv.log, inv.request_id)
    after = invoke(exec_lam, name, {})
    assert after.function_error is None, after.raw
    assert after.payload["token"] != token
    wait_environments(exec_server, 1)


# --- logs ---------------------------------------------------------------------------------


def test_log_tail_framing(exec_lam, rt):
    name = f"logs-{rt.key}"
    rt.create(exec_lam, name, "logs")
    cold = invoke(exec_lam, name, {"lines": ["first line", "second line"],
                                   "stderr": ["to stderr"]}, tail=True)
    assert cold.function_error is None, cold.raw
    f = framing(cold.log, cold.request_id)
    assert f.report["init"] is not None, "a cold start's REPORT has an Init Duration"
    own = f.between()
    first = [i for i, line in enumerate(own) if "first line" in line]
    second = [i for i, line in enumerate(own) if "second line" in line]
    assert first and second and first[0] < second[0], own
    assert any("to stderr" in line for line in own), own

    warm = invoke(exec_lam, name, {"lines": ["warm line"]}, tail=True)
    assert warm.function_error is None, warm.raw
    w = framing(warm.log, warm.request_id)
    assert w.report["init"] is None, f"a warm REPORT has no Init Duration: {w.report.group(0)}"
    assert any("warm line" in line for line in w.between())
    # Only this invocation's lines.
    assert "first line" not in warm.log and cold.request_id not in warm.log


def test_log_tail_is_the_last_4_kb(exec_lam, rt):
    name = f"biglog-{rt.key}"
    rt.create(exec_lam, name, "logs")
    lines = [f"line {i:04d} " + "y" * 90 for i in range(300)]  # ~30 KB
    inv = invoke(exec_lam, name, {"lines": lines}, tail=True)
    assert inv.function_error is None, inv.raw
    assert len(inv.log.encode()) <= 4096
    assert inv.log.splitlines()[-1].startswith(f"REPORT RequestId: {inv.request_id}\t")
    assert f"END RequestId: {inv.request_id}" in inv.log
    assert "line 0299" in inv.log and "line 0000" not in inv.log


def test_log_file_on_disk(exec_server, exec_lam, rt):
    name = f"disk-{rt.key}"
    rt.create(exec_lam, name, "logs")
    t0 = int(time.time() * 1000)
    inv = invoke(exec_lam, name, {"lines": ["written to disk"]})
    warm = invoke(exec_lam, name, {"lines": ["again on disk"]})
    t1 = int(time.time() * 1000)
    assert inv.function_error is None, inv.raw
    stream = inv.payload["stream"]
    assert warm.payload["stream"] == stream
    # Served by CloudWatch Logs, as on AWS: group /aws/lambda/<name>, the environment's stream.
    logs = exec_server.client("logs")
    groups = logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{name}")["logGroups"]
    assert [g["logGroupName"] for g in groups] == [f"/aws/lambda/{name}"]
    streams = logs.describe_log_streams(logGroupName=f"/aws/lambda/{name}")["logStreams"]
    assert [s["logStreamName"] for s in streams] == [stream]
    records = logs.get_log_events(logGroupName=f"/aws/lambda/{name}", logStreamName=stream,
                                  startFromHead=True)["events"]
    for r in records:
        assert isinstance(r["timestamp"], int) and t0 - 2000 <= r["timestamp"] <= t1 + 2000, r
        assert isinstance(r["message"], str)
    messages = [r["message"].rstrip("\n") for r in records]
    for rid, text, cold in ((inv.request_id, "written to disk", True),
                            (warm.request_id, "again on disk", False)):
        start = messages.index(f"START RequestId: {rid} Version: $LATEST")
        end = messages.index(f"END RequestId: {rid}")
        assert start < end
        assert any(text in m for m in messages[start + 1:end]), messages
        report = REPORT_RE.match(messages[end + 1])
        assert report and report["id"] == rid, messages[end + 1]
        assert (report["init"] is not None) == cold, messages[end + 1]
    # What init printed is in the stream too, before the first START.
    init = [i for i, m in enumerate(messages) if "init-line from app." in m]
    assert init, f"what init printed is missing from the stream: {messages}"
    first_start = messages.index(f"START RequestId: {inv.request_id} Version: $LATEST")
    assert init[0] < first_start, \
        f"what init printed comes after the first START (lines {init[0]} vs {first_start}): " \
        f"{messages[:4]}"
    stamps = [r["timestamp"] for r in records]
    assert stamps == sorted(stamps), "log records out of time order"


# --- environments -----------------------------------------------------------------------


def test_warm_reuse(exec_server, exec_lam, rt):
    name = f"warm-{rt.key}"
    rt.create(exec_lam, name, "describe")
    one = invoke(exec_lam, name, {}, tail=True)
    two = invoke(exec_lam, name, {}, tail=True)
    assert one.function_error is None and two.function_error is None, (one.raw, two.raw)
    assert one.payload["count"] == 1 and two.payload["count"] == 2
    assert one.payload["token"] == two.payload["token"]
    assert one.payload["pid"] == two.payload["pid"]
    assert framing(one.log, one.request_id).report["init"] is not None
    assert framing(two.log, two.request_id).report["init"] is None
    assert health(exec_server)["services"]["lambda"]["environments"] == 1


def test_concurrent_invocations_get_their_own_environments(exec_server, exec_lam):
    rt = RUNTIMES["python"]
    rt.create(exec_lam, "conc", "sleep", Timeout=10)
    results: list = [None, None]

    def run(i):
        results[i] = invoke(exec_server.client("lambda"), "conc", {"seconds": 1.5})

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(r is not None and r.function_error is None for r in results), results
    assert results[0].payload["token"] != results[1].payload["token"], \
        "one environment ran two invocations at once"
    assert health(exec_server)["services"]["lambda"]["environments"] == 2


def test_configuration_update_uses_a_new_environment(exec_server, exec_lam, rt):
    name = f"update-{rt.key}"
    rt.create(exec_lam, name, "describe", Environment={"Variables": {"STAGE": "one"}})
    first = invoke(exec_lam, name, {})
    assert first.payload["env"]["STAGE"] == "one"
    assert invoke(exec_lam, name, {}).payload["token"] == first.payload["token"]

    update_configuration(exec_lam, name, Environment={"Variables": {"STAGE": "two"}},
                         MemorySize=192)
    after = invoke(exec_lam, name, {}, tail=True)
    assert after.function_error is None, after.raw
    assert after.payload["env"]["STAGE"] == "two"
    assert after.payload["env"]["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "192"
    assert after.payload["token"] != first.payload["token"]
    assert after.payload["count"] == 1
    assert framing(after.log, after.request_id, memory=192).report["init"] is not None


def test_code_update_uses_a_new_environment(exec_lam):
    create_function(exec_lam, "recode", {"app.py": "def h(e, c):\n    return 'v1'\n"},
                    runtime="python3.11", handler="app.h")
    assert invoke(exec_lam, "recode").payload == "v1"
    exec_lam.update_function_code(FunctionName="recode",
                                  ZipFile=make_zip({"app.py": "def h(e, c):\n    return 'v2'\n"}))
    exec_lam.get_waiter("function_updated_v2").wait(FunctionName="recode", WaiterConfig=FAST_WAIT)
    assert invoke(exec_lam, "recode").payload == "v2"


# --- invocation types and parameters ------------------------------------------------------


def test_dry_run(exec_server, exec_lam):
    RUNTIMES["python"].create(exec_lam, "dry", "describe")
    resp = exec_lam.invoke(FunctionName="dry", InvocationType="DryRun", Payload=b"{}")
    assert resp["StatusCode"] == 204
    assert resp["Payload"].read() == b""
    assert health(exec_server)["services"]["lambda"]["environments"] == 0, "DryRun must not run the function"
    with pytest.raises(exec_lam.exceptions.ResourceNotFoundException):
        exec_lam.invoke(FunctionName="nope", InvocationType="DryRun")


CLIENT_CONTEXT = {
    "custom": {"user": "alice", "n": 1},
    "env": {"platform": "e2e", "locale": "en_GB"},
    "client": {"installation_id": "inst-1", "app_title": "Stratus Tests",
               "app_version_name": "1.0", "app_version_code": "100",
               "app_package_name": "dev.stratus.e2e"},
}


def test_client_context(exec_lam, rt):
    name = f"cc-{rt.key}"
    rt.create(exec_lam, name, "describe")
    encoded = base64.b64encode(json.dumps(CLIENT_CONTEXT).encode()).decode()
    inv = invoke(exec_lam, name, {}, ClientContext=encoded)
    assert inv.function_error is None, inv.raw
    cc = inv.payload["client_context"]
    assert cc is not None, "the client context did not reach the function"
    assert cc["custom"] == CLIENT_CONTEXT["custom"]
    assert cc["env"] == CLIENT_CONTEXT["env"]
    assert cc["client"] == CLIENT_CONTEXT["client"]
    # Without one, there is none (and a warm environment does not keep the last one).
    plain = invoke(exec_lam, name, {})
    assert plain.payload["client_context"] is None


def test_client_context_must_be_base64_json(exec_lam):
    RUNTIMES["python"].create(exec_lam, "badcc", "describe")
    for bad in ("%%% not base64 %%%", base64.b64encode(b"not json").decode()):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            exec_lam.invoke(FunctionName="badcc", Payload=b"{}", ClientContext=bad)
        assert e.value.response["Error"]["Code"] == "InvalidRequestContentException", bad
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_request_payload_limit(exec_server, exec_lam, rt):
    name = f"payload-{rt.key}"
    rt.create(exec_lam, name, "length", MemorySize=512, Timeout=30)
    # Just under 6 MB reaches the function whole.
    n = SIX_MB - 1000
    inv = invoke(exec_lam, name, {"data": "x" * n})
    assert inv.function_error is None, inv.raw[:500]
    assert inv.payload["length"] == n
    # Over 6 MB is refused before anything runs.
    too_big = json.dumps({"data": "x" * SIX_MB}).encode()
    with pytest.raises(botocore.exceptions.ClientError) as e:
        exec_lam.invoke(FunctionName=name, Payload=too_big)
    assert e.value.response["Error"]["Code"] == "RequestTooLargeException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413


def test_response_size_limit(exec_lam, rt):
    name = f"bigresp-{rt.key}"
    rt.create(exec_lam, name, "big", MemorySize=512, Timeout=30)
    inv = invoke(exec_lam, name, {"chars": 7 * 1024 * 1024})
    assert inv.status == 200
    assert inv.function_error == "Unhandled", inv.raw[:300]
    assert inv.payload["errorType"] == "Function.ResponseSizeTooLarge", inv.payload
    # A response under the limit arrives whole, and the function is still in service.
    ok = invoke(exec_lam, name, {"chars": SIX_MB - 1000})
    assert ok.function_error is None, ok.raw[:300]
    assert ok.payload == "x" * (SIX_MB - 1000)


def test_non_json_payload_is_refused(exec_lam):
    RUNTIMES["python"].create(exec_lam, "notjson", "describe")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        exec_lam.invoke(FunctionName="notjson", Payload=b"this is not json")
    assert e.value.response["Error"]["Code"] == "InvalidRequestContentException"


@pytest.mark.parametrize("runtime", ["python3.11", "nodejs20.x"])
def test_code_in_subdirectories_of_a_zip_without_directory_entries(exec_lam, runtime):
    """Many zip tools (Python's zipfile, most build plugins) store files only, with no entry
    for their directories; the directories must still be usable by the function."""
    if runtime == "python3.11":
        files = {"app.py": "from pkg.sub import mod\n\ndef h(e, c):\n    return mod.VALUE\n",
                 "pkg/__init__.py": "", "pkg/sub/__init__.py": "",
                 "pkg/sub/mod.py": "VALUE = 'from a subdirectory'\n"}
    else:
        files = {"app.js": "const m = require('./lib/sub/mod');\n"
                           "exports.h = async () => m.VALUE;\n",
                 "lib/sub/mod.js": "exports.VALUE = 'from a subdirectory';\n"}
    create_function(exec_lam, "subdirs", files, runtime=runtime, handler="app.h")
    inv = invoke(exec_lam, "subdirs", {})
    assert inv.function_error is None, inv.raw
    assert inv.payload == "from a subdirectory"


def test_function_calls_the_stratus_api_with_its_credentials(exec_lam):
    create_function(exec_lam, "caller", {"caller.py": _read("invoke/caller.py")},
                    runtime="python3.11", handler="caller.handler", Timeout=15)
    RUNTIMES["python"].create(exec_lam, "neighbour", "describe")
    inv = invoke(exec_lam, "caller", {})
    assert inv.function_error is None, inv.raw
    got = inv.payload
    assert got["status"] == 200, got
    assert got["functions"] == ["caller", "neighbour"]
    # A wrong signature is refused, as from anywhere else.
    assert got["bad_status"] == 403, got
    assert (got["bad_type"] or "").split(":")[0] == "InvalidSignatureException", got


def test_keep_alive_counts_from_the_end_of_the_last_invocation(exec_server_factory):
    server = exec_server_factory(keep_alive=1)
    lam = server.client("lambda")
    RUNTIMES["python"].create(lam, "busy", "sleep", Timeout=10)
    token = invoke(lam, "busy", {"seconds": 0}).payload["token"]
    # Busy for longer than the keep-alive: never reaped while it runs...
    long = invoke(lam, "busy", {"seconds": 2.5})
    assert long.function_error is None, long.raw
    assert long.payload["token"] == token
    # ...and the idle time starts when it ends.
    assert invoke(lam, "busy", {"seconds": 0}).payload["token"] == token
    wait_environments(server, 0, timeout=15)
    fresh = invoke(lam, "busy", {"seconds": 0})
    assert fresh.function_error is None, fresh.raw
    assert fresh.payload["token"] != token


def test_invoke_a_published_version(exec_server, exec_lam, rt):
    name = f"versioned-{rt.key}"
    resp = rt.create(exec_lam, name, "describe", Publish=True)
    version = resp["Version"]
    assert version == "1"
    inv = invoke(exec_lam, name, {}, Qualifier=version, tail=True)
    assert inv.function_error is None, inv.raw
    assert inv.executed_version == version
    doc = inv.payload
    assert doc["context"]["function_version"] == version
    assert doc["env"]["AWS_LAMBDA_FUNCTION_VERSION"] == version
    assert doc["context"]["invoked_function_arn"] == function_arn(name, version)
    assert re.fullmatch(r"\d{4}/\d{2}/\d{2}/\[1\][0-9a-f]+",
                        doc["env"]["AWS_LAMBDA_LOG_STREAM_NAME"]), doc["env"]
    assert f"START RequestId: {inv.request_id} Version: 1" in inv.log.splitlines()
    # $LATEST is another environment.
    latest = invoke(exec_lam, name, {})
    assert latest.executed_version == "$LATEST"
    assert latest.payload["env"]["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert latest.payload["token"] != doc["token"]
    with pytest.raises(exec_lam.exceptions.ResourceNotFoundException):
        exec_lam.invoke(FunctionName=name, Qualifier="7", Payload=b"{}")


def test_a_recreated_function_runs_its_new_code(exec_lam):
    for text in ("first", "second"):
        create_function(exec_lam, "phoenix",
                        {"app.py": f"def h(e, c):\n    return {text!r}\n"},
                        runtime="python3.11", handler="app.h")
        assert invoke(exec_lam, "phoenix").payload == text
        exec_lam.delete_function(FunctionName="phoenix")
    with pytest.raises(exec_lam.exceptions.ResourceNotFoundException):
        exec_lam.invoke(FunctionName="phoenix", Payload=b"{}")


def test_provided_runtime_response_bytes_pass_through(exec_lam):
    """A custom runtime may answer any bytes; the caller gets them unchanged."""
    bootstrap = r"""#!/usr/bin/python3
import os, urllib.request
api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"
while True:
    with urllib.request.urlopen(api + "next") as r:
        rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
    body = "plain text, not JSON: caf\u00e9\n".encode()
    urllib.request.urlopen(urllib.request.Request(api + rid + "/response", data=body,
                                                  method="POST")).read()
"""
    create_function(exec_lam, "rawbytes", {"bootstrap": bootstrap}, runtime="provided.al2023",
                    handler="x")
    inv = invoke(exec_lam, "rawbytes", {}, tail=True)
    assert inv.function_error is None, (inv.raw, inv.log)
    assert inv.raw == "plain text, not JSON: caf\u00e9\n".encode()


def test_unpacked_code_removed_from_the_data_dir_is_unpacked_again(exec_server, exec_lam):
    """The unpacked copy of a package is derived data: a warm environment keeps the copy it
    mounted, and the next new environment unpacks it again from the stored package."""
    import shutil
    files = {"app.py": "def h(e, c):\n    return 'from the package'\n"}
    create_function(exec_lam, "rederived", files, runtime="python3.11", handler="app.h")
    first = invoke(exec_lam, "rederived")
    assert first.payload == "from the package", first.raw
    code_dirs = [d for d in (exec_server.data_dir / "code").iterdir()
                 if (d / "app.py").is_file()]
    assert len(code_dirs) == 1, code_dirs
    shutil.rmtree(code_dirs[0])
    # The warm environment still serves.
    assert invoke(exec_lam, "rederived").payload == "from the package"
    # A configuration change needs a new environment, made from a new unpacked copy.
    update_configuration(exec_lam, "rederived", Environment={"Variables": {"STEP": "2"}})
    assert invoke(exec_lam, "rederived").payload == "from the package"
    assert (code_dirs[0] / "app.py").is_file()
