"""Stratus's managed-runtime bootstraps against a fake Lambda Runtime API.

Each test writes a function into a temporary task root, starts the Python or Node.js
bootstrap as a subprocess pointed at a small in-process Runtime API, queues events and
checks what the runtime posts back (responses, invocation errors, init errors) and what
it writes to its log (stdout and stderr, sent to one file as the sandbox does).

Waits are on the fake API's condition variable or on the process, each with a deadline.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PY_BOOTSTRAP = REPO / "crates/invoke/runtimes/python/bootstrap.py"
NODE_BOOTSTRAP = REPO / "crates/invoke/runtimes/node/bootstrap.js"
PYTHON = os.environ.get("STRATUS_TEST_PYTHON") or sys.executable
NODE = os.environ.get("STRATUS_TEST_NODE") or shutil.which("node") or "/usr/bin/node"

WAIT = 10.0
MAX_RESPONSE = 6 * 1024 * 1024
ARN = "arn:aws:lambda:us-east-1:000000000000:function:fn"
ISO_TS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"

needs_node = pytest.mark.skipif(not Path(NODE).exists(), reason="node is not installed")


class FakeRuntimeApi:
    """The Runtime API's four routes, with queued events and recorded answers."""

    def __init__(self):
        self.cond = threading.Condition()
        self.queue: list[tuple[str, dict, bytes]] = []
        self.responses: dict[str, dict] = {}
        self.errors: dict[str, dict] = {}
        self.init_errors: list[dict] = []
        self.next_calls = 0
        self.stopping = False
        # Bumped when a runtime is killed: its pending GET must not take the next event.
        self.generation = 0
        # Like the Stratus server: stop reading an oversized response, answer 413 and hang up.
        self.cut_oversized = False
        self.log_path: Path | None = None
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _reply(self, status, body=b"", headers=None):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _body(self):
                return self.rfile.read(int(self.headers.get("Content-Length", "0")))

            def do_GET(self):
                if self.path != "/2018-06-01/runtime/invocation/next":
                    return self._reply(404)
                with api.cond:
                    api.next_calls += 1
                    api.cond.notify_all()
                    generation = api.generation
                    while not api.queue and not api.stopping and generation == api.generation:
                        api.cond.wait(0.5)
                    if api.stopping or generation != api.generation:
                        self.close_connection = True
                        return
                    request_id, headers, body = api.queue.pop(0)
                headers = dict(headers)
                headers["Lambda-Runtime-Aws-Request-Id"] = request_id
                headers.setdefault("Content-Type", "application/json")
                self._reply(200, body, headers)

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                if api.cut_oversized and length > MAX_RESPONSE:
                    self.rfile.read(MAX_RESPONSE + 1)
                    self.close_connection = True
                    return self._reply(413, b'{"errorType":"RequestEntityTooLarge"}', {"Connection": "close"})
                body = self._body()
                m = re.fullmatch(r"/2018-06-01/runtime/invocation/([^/]+)/(response|error)", self.path)
                record = {
                    "body": body,
                    "error_type": self.headers.get("Lambda-Runtime-Function-Error-Type"),
                    "content_type": self.headers.get("Content-Type"),
                    # What the log held when the runtime answered.
                    "log": api.log_path.read_bytes().decode("utf-8", "replace") if api.log_path else "",
                }
                if self.path == "/2018-06-01/runtime/init/error":
                    with api.cond:
                        api.init_errors.append(record)
                        api.cond.notify_all()
                    return self._reply(202, b'{"status":"OK"}')
                if not m:
                    return self._reply(404)
                request_id, kind = m.groups()
                if kind == "response" and len(body) > MAX_RESPONSE:
                    msg = {
                        "errorMessage": f"Exceeded maximum allowed payload size ({MAX_RESPONSE} bytes).",
                        "errorType": "RequestEntityTooLarge",
                    }
                    return self._reply(413, json.dumps(msg).encode())
                with api.cond:
                    (api.responses if kind == "response" else api.errors)[request_id] = record
                    api.cond.notify_all()
                self._reply(202, b'{"status":"OK"}')

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def push(self, event, headers: dict | None = None, raw: bytes | None = None) -> str:
        request_id = str(uuid.uuid4())
        h = {
            "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + 30_000),
            "Lambda-Runtime-Invoked-Function-Arn": ARN,
            "Lambda-Runtime-Trace-Id": "Root=1-5f0e1d2c-0123456789abcdef01234567;Parent=1;Sampled=0",
        }
        h.update(headers or {})
        body = raw if raw is not None else json.dumps(event).encode()
        with self.cond:
            self.queue.append((request_id, h, body))
            self.cond.notify_all()
        return request_id

    def wait_for(self, predicate, what: str, timeout: float = WAIT):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {what}")
                self.cond.wait(left)

    def outcome(self, request_id: str, timeout: float = WAIT) -> tuple[str, dict]:
        """("response" | "error", record) for an invocation."""

        def done():
            if request_id in self.responses:
                return ("response", self.responses[request_id])
            if request_id in self.errors:
                return ("error", self.errors[request_id])
            return None

        return self.wait_for(done, f"an answer to {request_id}", timeout)

    def response(self, request_id: str):
        kind, record = self.outcome(request_id)
        assert kind == "response", f"expected a response, got an error: {record['body']!r}"
        return json.loads(record["body"])

    def error(self, request_id: str) -> tuple[dict, dict]:
        kind, record = self.outcome(request_id)
        assert kind == "error", f"expected an error, got a response: {record['body']!r}"
        return json.loads(record["body"]), record

    def init_error(self) -> tuple[dict, dict]:
        record = self.wait_for(lambda: self.init_errors and self.init_errors[0], "an init error")
        return json.loads(record["body"]), record

    def forget_waiters(self):
        with self.cond:
            self.generation += 1
            self.cond.notify_all()

    def stop(self):
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        self.server.shutdown()
        self.server.server_close()


class Runtime:
    """A bootstrap process with its task root and log."""

    def __init__(self, tmp_path: Path, api: FakeRuntimeApi, kind: str):
        self.kind = kind
        self.api = api
        self.task = tmp_path / "task"
        self.task.mkdir()
        self.log_path = tmp_path / "output.log"
        self.log_path.touch()
        api.log_path = self.log_path
        self.proc: subprocess.Popen | None = None

    def write(self, name: str, text: str):
        p = self.task / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))

    def start(self, handler: str, env: dict | None = None):
        full_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "TZ": ":UTC",
            "_HANDLER": handler,
            "AWS_LAMBDA_RUNTIME_API": self.api.address,
            "LAMBDA_TASK_ROOT": str(self.task),
            "LAMBDA_RUNTIME_DIR": str(PY_BOOTSTRAP.parent if self.kind == "python" else NODE_BOOTSTRAP.parent),
            "AWS_LAMBDA_FUNCTION_NAME": "fn",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
            "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/fn",
            "AWS_LAMBDA_LOG_STREAM_NAME": "2024/01/01/[$LATEST]abc",
            "AWS_REGION": "us-east-1",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11" if self.kind == "python" else "AWS_Lambda_nodejs20.x",
        }
        full_env.update(env or {})
        argv = [PYTHON, str(PY_BOOTSTRAP)] if self.kind == "python" else [NODE, str(NODE_BOOTSTRAP)]
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            argv, cwd=self.task, env=full_env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        return self

    def log(self) -> str:
        return self.log_path.read_bytes().decode("utf-8", "replace")

    def log_lines(self) -> list[str]:
        return self.log().split("\n")

    def exit_code(self, timeout: float = WAIT) -> int:
        return self.proc.wait(timeout)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.api.forget_waiters()


@pytest.fixture
def api():
    a = FakeRuntimeApi()
    yield a
    a.stop()


@pytest.fixture
def runtimes(tmp_path, api):
    started: list[Runtime] = []

    def make(kind: str) -> Runtime:
        r = Runtime(tmp_path, api, kind)
        started.append(r)
        return r

    yield make
    for r in started:
        r.kill()


@pytest.fixture
def py(runtimes):
    return runtimes("python")


@pytest.fixture
def node(runtimes):
    if not Path(NODE).exists():
        pytest.skip("node is not installed")
    return runtimes("node")


# ---------------------------------------------------------------------------------------
# Python


def test_python_success_and_context(py, api):
    py.write(
        "index.py",
        """
        import os, sys
        def handler(event, context):
            return {
                "event": event,
                "aws_request_id": context.aws_request_id,
                "function_name": context.function_name,
                "function_version": context.function_version,
                "invoked_function_arn": context.invoked_function_arn,
                "memory_limit_in_mb": context.memory_limit_in_mb,
                "log_group_name": context.log_group_name,
                "log_stream_name": context.log_stream_name,
                "remaining": context.get_remaining_time_in_millis(),
                "identity": [context.identity.cognito_identity_id, context.identity.cognito_identity_pool_id],
                "client_context": context.client_context,
                "cwd": os.getcwd(),
                "path0": sys.path[0],
            }
        """,
    )
    py.start("index.handler")
    rid = api.push({"key": "value", "n": [1, 2]})
    out = api.response(rid)
    assert out["event"] == {"key": "value", "n": [1, 2]}
    assert out["aws_request_id"] == rid
    assert out["function_name"] == "fn"
    assert out["function_version"] == "$LATEST"
    assert out["invoked_function_arn"] == ARN
    assert out["memory_limit_in_mb"] == "256"  # a string, as in Lambda
    assert out["log_group_name"] == "/aws/lambda/fn"
    assert out["log_stream_name"] == "2024/01/01/[$LATEST]abc"
    assert 20_000 < out["remaining"] <= 30_000
    assert out["identity"] == [None, None]
    assert out["client_context"] is None
    assert out["path0"] == str(py.task)
    kind, record = api.outcome(rid)
    assert record["content_type"] == "application/json"
    # Lambda's Python runtime writes JSON with json.dumps's default separators.
    assert record["body"].startswith(b'{"event": {"key": "value"')


def test_python_warm_invocations_share_one_process(py, api):
    py.write(
        "index.py",
        """
        import os
        count = 0
        def handler(event, context):
            global count
            count += 1
            return {"pid": os.getpid(), "count": count, "id": context.aws_request_id}
        """,
    )
    py.start("index.handler")
    first, second = api.push({}), api.push({})
    a, b = api.response(first), api.response(second)
    assert a["pid"] == b["pid"] == py.proc.pid
    assert (a["count"], b["count"]) == (1, 2)
    assert (a["id"], b["id"]) == (first, second)


def test_python_handler_exception(py, api):
    py.write(
        "index.py",
        """
        def helper():
            raise ValueError("boom")

        def handler(event, context):
            helper()
        """,
    )
    py.start("index.handler")
    rid = api.push({})
    err, record = api.error(rid)
    assert err["errorType"] == "ValueError"
    assert err["errorMessage"] == "boom"
    assert err["requestId"] == rid
    trace = err["stackTrace"]
    path = py.task / "index.py"
    assert trace == [
        f'  File "{path}", line 6, in handler\n    helper()\n',
        f'  File "{path}", line 3, in helper\n    raise ValueError("boom")\n',
    ]
    assert record["error_type"] == "Unhandled"
    # Logged before the error was posted: one line, "\r" between its parts.
    line = next(l for l in record["log"].split("\n") if l.startswith("[ERROR]"))
    parts = line.split("\r")
    assert parts[0] == "[ERROR] ValueError: boom"
    assert parts[1] == "Traceback (most recent call last):"
    assert parts[2] == f'\u00a0\u00a0File "{path}", line 6, in handler'
    assert parts[3] == "\u00a0\u00a0\u00a0\u00a0helper()"
    # The process lives on.
    again = api.push({})
    api.error(again)
    assert py.proc.poll() is None


def test_python_module_not_found(py, api):
    py.start("missing.handler")
    err, record = api.init_error()
    assert err == {
        "errorMessage": "Unable to import module 'missing': No module named 'missing'",
        "errorType": "Runtime.ImportModuleError",
        "requestId": "",
        "stackTrace": [],
    }
    assert record["error_type"] == "Runtime.ImportModuleError"
    assert py.exit_code() == 1
    assert (
        "[ERROR] Runtime.ImportModuleError: Unable to import module 'missing': No module named 'missing'"
        "\rTraceback (most recent call last):\n"
    ) in py.log()


def test_python_missing_dependency_is_an_import_error(py, api):
    py.write("index.py", "import requests_that_do_not_exist\ndef handler(e, c):\n    return 1\n")
    py.start("index.handler")
    err, _ = api.init_error()
    assert err["errorType"] == "Runtime.ImportModuleError"
    assert err["errorMessage"] == "Unable to import module 'index': No module named 'requests_that_do_not_exist'"


def test_python_handler_not_found(py, api):
    py.write("index.py", "def other(event, context):\n    return 1\n")
    py.start("index.handler")
    err, record = api.init_error()
    assert err["errorType"] == "Runtime.HandlerNotFound"
    assert err["errorMessage"] == "Handler 'handler' missing on module 'index'"
    assert record["error_type"] == "Runtime.HandlerNotFound"
    assert py.exit_code() == 1


def test_python_syntax_error(py, api):
    py.write("index.py", "def handler(event, context)\n    return 1\n")
    py.start("index.handler")
    err, _ = api.init_error()
    assert err["errorType"] == "Runtime.UserCodeSyntaxError"
    assert err["errorMessage"].startswith("Syntax error in module 'index': ")
    assert "(index.py, line 1)" in err["errorMessage"]
    assert err["stackTrace"] == [
        f'  File "{py.task / "index.py"}" Line 1\n    def handler(event, context)\n'
    ]


def test_python_malformed_handler(py, api):
    py.start("index")
    err, _ = api.init_error()
    assert err["errorType"] == "Runtime.MalformedHandlerName"
    assert err["errorMessage"] == "Bad handler 'index': not enough values to unpack (expected 2, got 1)"


def test_python_builtin_module_conflict(py, api):
    py.start("sys.handler")
    err, _ = api.init_error()
    assert err["errorType"] == "Runtime.BuiltInModuleConflict"
    assert err["errorMessage"] == "Cannot use built-in module sys as a handler module"


def test_python_exception_at_import_keeps_its_type(py, api):
    py.write("index.py", "raise RuntimeError('no config')\n")
    py.start("index.handler")
    err, _ = api.init_error()
    assert err["errorType"] == "RuntimeError"
    assert err["errorMessage"] == "no config"
    assert any(f'File "{py.task / "index.py"}", line 1, in <module>' in f for f in err["stackTrace"])


def test_python_nested_handler_paths(py, api):
    py.write("pkg/__init__.py", "")
    py.write("pkg/mod.py", "def fn(event, context):\n    return 'dotted'\n")
    py.write("src/app/main.py", "def handler(event, context):\n    return 'slashed'\n")
    py.start("pkg.mod.fn")
    assert api.response(api.push({})) == "dotted"
    py.kill()
    py.start("src/app/main.handler")
    assert api.response(api.push({})) == "slashed"


def test_python_marshal_error(py, api):
    py.write("index.py", "def handler(event, context):\n    return {1, 2}\n")
    py.start("index.handler")
    err, _ = api.error(api.push({}))
    assert err["errorType"] == "Runtime.MarshalError"
    assert err["errorMessage"] == "Unable to marshal response: Object of type set is not JSON serializable"
    assert err["stackTrace"] == []


def test_python_unmarshal_error(py, api):
    py.write("index.py", "def handler(event, context):\n    return event\n")
    py.start("index.handler")
    err, _ = api.error(api.push(None, raw=b"{not json"))
    assert err["errorType"] == "Runtime.UnmarshalError"
    assert err["errorMessage"].startswith("Unable to unmarshal input: Expecting property name")


@pytest.mark.parametrize("cut", [False, True], ids=["drained", "cut"])
def test_python_response_too_large(py, api, cut):
    api.cut_oversized = cut
    py.write("index.py", "def handler(event, context):\n    return 'x' * (7 * 1024 * 1024)\n")
    py.start("index.handler")
    rid = api.push({})
    err, _ = api.error(rid)
    assert err["errorType"] == "Function.ResponseSizeTooLarge"
    limit = 6291556 if cut else MAX_RESPONSE  # Lambda's figure when the 413 does not say
    assert err["errorMessage"] == (
        f"Response payload size exceeded maximum allowed payload size ({limit} bytes)."
    )
    # The runtime carries on.
    py.write("unused.py", "")
    api.error(api.push({}))
    assert py.proc.poll() is None


def test_python_client_context_identity_and_trace_id(py, api):
    py.write(
        "index.py",
        """
        import os
        def handler(event, context):
            cc = context.client_context
            return {
                "trace": os.environ.get("_X_AMZN_TRACE_ID"),
                "custom": cc and cc.custom,
                "env": cc and cc.env,
                "app_title": cc and cc.client and cc.client.app_title,
                "identity": [context.identity.cognito_identity_id, context.identity.cognito_identity_pool_id],
            }
        """,
    )
    py.start("index.handler")
    cc = {"client": {"app_title": "demo", "installation_id": "i-1"}, "custom": {"k": "v"}, "env": {"platform": "x"}}
    ci = {"cognitoIdentityId": "us-east-1:abc", "cognitoIdentityPoolId": "us-east-1:pool"}
    first = api.response(
        api.push(
            {},
            {
                "Lambda-Runtime-Client-Context": json.dumps(cc),
                "Lambda-Runtime-Cognito-Identity": json.dumps(ci),
                "Lambda-Runtime-Trace-Id": "Root=1-abc;Sampled=1",
            },
        )
    )
    assert first == {
        "trace": "Root=1-abc;Sampled=1",
        "custom": {"k": "v"},
        "env": {"platform": "x"},
        "app_title": "demo",
        "identity": ["us-east-1:abc", "us-east-1:pool"],
    }
    second = api.response(api.push({}, {"Lambda-Runtime-Trace-Id": ""}))
    assert second["trace"] is None
    assert second["custom"] is None


def test_python_logging_and_print_reach_the_log_before_the_response(py, api):
    py.write(
        "index.py",
        """
        import logging, sys
        logger = logging.getLogger()
        print("cold start")
        def handler(event, context):
            print("printed", end="")
            print(" line")
            sys.stderr.write("to stderr\\n")
            logger.info("hidden at the default level")
            logger.warning("careful %s", 42)
            logging.getLogger("child").error("two\\nlines")
            return "ok"
        """,
    )
    py.start("index.handler")
    rid = api.push({})
    assert api.response(rid) == "ok"
    kind, record = api.outcome(rid)
    lines = record["log"].split("\n")
    assert "cold start" in lines
    assert "printed line" in lines
    assert "to stderr" in lines
    assert not any("hidden" in l for l in lines)
    assert any(re.fullmatch(rf"\[WARNING\]\t{ISO_TS}\t{rid}\tcareful 42", l) for l in lines), lines
    assert any(re.fullmatch(rf"\[ERROR\]\t{ISO_TS}\t{rid}\ttwo\rlines", l) for l in lines), lines


def test_python_log_level_from_environment(py, api):
    py.write(
        "index.py",
        """
        import logging
        logging.getLogger().debug("at init")
        def handler(event, context):
            logging.getLogger().info("informative")
            return None
        """,
    )
    py.start("index.handler", {"AWS_LAMBDA_LOG_LEVEL": "debug"})
    rid = api.push({})
    assert api.response(rid) is None
    log = api.outcome(rid)[1]["log"]
    assert re.search(rf"^\[DEBUG\]\t{ISO_TS}\t\tat init$", log, re.M)
    assert re.search(rf"^\[INFO\]\t{ISO_TS}\t{rid}\tinformative$", log, re.M)


def test_python_logging_is_configured_when_imported_and_only_then(py, api):
    py.write(
        "index.py",
        """
        import sys
        loaded_at_start = "logging" in sys.modules
        def handler(event, context):
            if event.get("log"):
                import logging
                logging.basicConfig(level=logging.INFO)  # a no-op: the root has a handler
                logging.getLogger().warning("late %s", len(logging.getLogger().handlers))
            return {"loaded_at_start": loaded_at_start, "loaded": "logging" in sys.modules}
        """,
    )
    py.start("index.handler")
    rid = api.push({})
    # The runtime itself does not pay for logging when the function does not use it.
    assert api.response(rid) == {"loaded_at_start": False, "loaded": False}
    rid = api.push({"log": True})
    assert api.response(rid) == {"loaded_at_start": False, "loaded": True}
    lines = api.outcome(rid)[1]["log"].split("\n")
    assert any(re.fullmatch(rf"\[WARNING\]\t{ISO_TS}\t{rid}\tlate 1", l) for l in lines), lines


def test_python_bytes_and_decimal_results(py, api):
    py.write(
        "index.py",
        """
        from decimal import Decimal
        def handler(event, context):
            if event == "bytes":
                return b"raw\\x00bytes"
            return {"price": Decimal("1.5"), "qty": Decimal("3")}
        """,
    )
    py.start("index.handler")
    rid = api.push("bytes")
    kind, record = api.outcome(rid)
    assert kind == "response" and record["body"] == b"raw\x00bytes"
    assert api.response(api.push("decimal")) == {"price": 1.5, "qty": 3}


# ---------------------------------------------------------------------------------------
# Node.js


@needs_node
def test_node_async_success_and_context(node, api):
    node.write(
        "index.js",
        """
        exports.handler = async (event, context) => ({
          event,
          awsRequestId: context.awsRequestId,
          functionName: context.functionName,
          functionVersion: context.functionVersion,
          invokedFunctionArn: context.invokedFunctionArn,
          memoryLimitInMB: context.memoryLimitInMB,
          logGroupName: context.logGroupName,
          logStreamName: context.logStreamName,
          remaining: context.getRemainingTimeInMillis(),
          waits: context.callbackWaitsForEmptyEventLoop,
          identity: context.identity === undefined ? 'undefined' : context.identity,
          clientContext: context.clientContext === undefined ? 'undefined' : context.clientContext,
        });
        """,
    )
    node.start("index.handler")
    rid = api.push({"key": "value"})
    out = api.response(rid)
    assert out["event"] == {"key": "value"}
    assert out["awsRequestId"] == rid
    assert out["functionName"] == "fn"
    assert out["functionVersion"] == "$LATEST"
    assert out["invokedFunctionArn"] == ARN
    assert out["memoryLimitInMB"] == "256"
    assert out["logGroupName"] == "/aws/lambda/fn"
    assert out["logStreamName"] == "2024/01/01/[$LATEST]abc"
    assert 20_000 < out["remaining"] <= 30_000
    assert out["waits"] is True
    assert out["identity"] == "undefined"
    assert out["clientContext"] == "undefined"
    # Compact JSON, as JSON.stringify writes it.
    assert api.outcome(rid)[1]["body"].startswith(b'{"event":{"key":"value"}')


@needs_node
def test_node_warm_invocations_share_one_process(node, api):
    node.write(
        "index.js",
        """
        let count = 0;
        exports.handler = async (event, context) => ({ pid: process.pid, count: ++count, id: context.awsRequestId });
        """,
    )
    node.start("index.handler")
    first, second = api.push({}), api.push({})
    a, b = api.response(first), api.response(second)
    assert a["pid"] == b["pid"] == node.proc.pid
    assert (a["count"], b["count"]) == (1, 2)
    assert (a["id"], b["id"]) == (first, second)


@needs_node
def test_node_callback_style_waits_for_the_event_loop(node, api):
    node.write(
        "index.js",
        """
        exports.handler = function (event, context, callback) {
          if (event.nowait) context.callbackWaitsForEmptyEventLoop = false;
          setTimeout(() => console.log('timer fired'), 300);
          callback(null, { got: event });
        };
        """,
    )
    node.start("index.handler")
    rid = api.push({"a": 1})
    assert api.response(rid) == {"got": {"a": 1}}
    # The response went out only once the pending timer had run.
    assert "timer fired" in api.outcome(rid)[1]["log"]
    rid2 = api.push({"nowait": True})
    assert api.response(rid2) == {"got": {"nowait": True}}
    assert api.outcome(rid2)[1]["log"].count("timer fired") == 1


@needs_node
def test_node_callback_error_and_promise_styles(node, api):
    node.write(
        "index.js",
        """
        exports.handler = function (event, context, callback) {
          if (event.mode === 'cb-error') return callback(new TypeError('bad input'));
          if (event.mode === 'cb-string') return callback('plain failure');
          if (event.mode === 'promise') return Promise.resolve({ via: 'promise' });
          if (event.mode === 'sync-return') return 'ignored';
          if (event.mode === 'succeed') return context.succeed('via succeed');
        };
        """,
    )
    node.start("index.handler")
    err, record = api.error(api.push({"mode": "cb-error"}))
    assert err["errorType"] == "TypeError"
    assert err["errorMessage"] == "bad input"
    assert err["trace"][0] == "TypeError: bad input"
    assert str(node.task / "index.js") in "\n".join(err["trace"])
    assert record["error_type"] == "Unhandled"
    err, _ = api.error(api.push({"mode": "cb-string"}))
    assert err == {"errorType": "string", "errorMessage": "plain failure", "trace": []}
    assert api.response(api.push({"mode": "promise"})) == {"via": "promise"}
    # A plain function that never calls back answers null once the event loop is empty.
    assert api.response(api.push({"mode": "sync-return"})) is None
    assert api.response(api.push({"mode": "succeed"})) == "via succeed"


@needs_node
def test_node_async_handler_throws(node, api):
    node.write(
        "index.mjs",
        """
        export const handler = async (event) => {
          if (event.fail) {
            const e = new Error('boom');
            e.code = 'E_BOOM';
            throw e;
          }
          return 'fine';
        };
        """,
    )
    node.start("index.handler")
    rid = api.push({"fail": True})
    err, record = api.error(rid)
    assert err["errorType"] == "Error"
    assert err["errorMessage"] == "boom"
    assert err["trace"][0] == "Error: boom"
    assert "index.mjs" in err["trace"][1]
    assert set(err) == {"errorType", "errorMessage", "trace"}
    line = next(l for l in record["log"].split("\n") if "Invoke Error" in l)
    m = re.fullmatch(rf"({ISO_TS})\t{rid}\tERROR\tInvoke Error \t(.*)", line)
    assert m, line
    logged = json.loads(m.group(2))
    assert logged["errorType"] == "Error" and logged["errorMessage"] == "boom"
    assert logged["code"] == "E_BOOM"
    assert logged["stack"][0] == "Error: boom"
    assert api.response(api.push({})) == "fine"


@needs_node
def test_node_promise_that_never_settles(node, api):
    node.write("index.js", "exports.handler = async () => { await new Promise(() => {}); };\n")
    node.start("index.handler")
    err, _ = api.error(api.push({}))
    assert err["errorType"] == "Runtime.NodeJsExit"
    # Still serving.
    err, _ = api.error(api.push({}))
    assert err["errorType"] == "Runtime.NodeJsExit"


@needs_node
def test_node_module_not_found(node, api):
    node.start("missing.handler")
    err, record = api.init_error()
    assert err["errorType"] == "Runtime.ImportModuleError"
    assert err["errorMessage"].startswith("Error: Cannot find module 'missing'\nRequire stack:\n- ")
    assert err["trace"][0] == "Runtime.ImportModuleError: Error: Cannot find module 'missing'"
    assert record["error_type"] == "Runtime.ImportModuleError"
    assert node.exit_code() == 129
    line = next(l for l in record["log"].split("\n") if "Uncaught Exception" in l)
    m = re.fullmatch(rf"{ISO_TS}\tundefined\tERROR\tUncaught Exception \t(.*)", line)
    assert m, line
    assert json.loads(m.group(1))["errorType"] == "Runtime.ImportModuleError"


@needs_node
def test_node_handler_not_found(node, api):
    node.write("index.js", "exports.other = async () => 1;\nexports.notfn = 42;\n")
    node.start("index.handler")
    err, _ = api.init_error()
    assert err["errorType"] == "Runtime.HandlerNotFound"
    assert err["errorMessage"] == "index.handler is undefined or not exported"
    node.kill()
    api.init_errors.clear()
    node.start("index.notfn")
    err, _ = api.init_error()
    assert err["errorMessage"] == "index.notfn is not a function"


@needs_node
def test_node_syntax_error(node, api):
    node.write("index.js", "exports.handler = async (event) => {\n  return {;\n};\n")
    node.start("index.handler")
    err, _ = api.init_error()
    assert err["errorType"] == "Runtime.UserCodeSyntaxError"
    assert err["errorMessage"].startswith("SyntaxError: ")
    assert node.exit_code() == 129


@needs_node
def test_node_malformed_handler(node, api):
    node.start("index")
    err, _ = api.init_error()
    assert err["errorType"] == "Runtime.MalformedHandlerName"
    assert err["errorMessage"] == "Bad handler"


@needs_node
def test_node_module_kinds_and_paths(node, api):
    node.write("src/app.js", "module.exports.handler = async () => 'nested cjs';\n")
    node.write("lib/tool.cjs", "exports.run = async () => 'cjs';\n")
    node.write("esm/package.json", '{"type": "module"}')
    node.write("esm/mod.js", "export const deep = { fn: async () => 'esm js' };\n")
    node.write("dir/index.js", "exports.handler = async () => 'directory';\n")
    cases = [
        ("src/app.handler", "nested cjs"),
        ("lib/tool.run", "cjs"),
        ("esm/mod.deep.fn", "esm js"),
        ("dir.handler", "directory"),
    ]
    for handler, expected in cases:
        node.start(handler)
        assert api.response(api.push({})) == expected, handler
        node.kill()


@needs_node
@pytest.mark.parametrize("cut", [False, True], ids=["drained", "cut"])
def test_node_response_too_large(node, api, cut):
    api.cut_oversized = cut
    node.write("index.js", "exports.handler = async () => 'x'.repeat(7 * 1024 * 1024);\n")
    node.start("index.handler")
    err, _ = api.error(api.push({}))
    assert err["errorType"] == "Function.ResponseSizeTooLarge"
    limit = 6291556 if cut else MAX_RESPONSE  # Lambda's figure when the 413 does not say
    assert err["errorMessage"] == (
        f"Response payload size exceeded maximum allowed payload size ({limit} bytes)."
    )
    api.error(api.push({}))
    assert node.proc.poll() is None


@needs_node
def test_node_client_context_identity_and_trace_id(node, api):
    node.write(
        "index.js",
        """
        exports.handler = async (event, context) => ({
          trace: process.env._X_AMZN_TRACE_ID === undefined ? null : process.env._X_AMZN_TRACE_ID,
          clientContext: context.clientContext === undefined ? null : context.clientContext,
          identity: context.identity === undefined ? null : context.identity,
        });
        """,
    )
    node.start("index.handler")
    cc = {"client": {"app_title": "demo"}, "custom": {"k": "v"}, "env": {"platform": "x"}}
    ci = {"cognitoIdentityId": "us-east-1:abc", "cognitoIdentityPoolId": "us-east-1:pool"}
    first = api.response(
        api.push(
            {},
            {
                "Lambda-Runtime-Client-Context": json.dumps(cc),
                "Lambda-Runtime-Cognito-Identity": json.dumps(ci),
                "Lambda-Runtime-Trace-Id": "Root=1-abc;Sampled=1",
            },
        )
    )
    assert first == {"trace": "Root=1-abc;Sampled=1", "clientContext": cc, "identity": ci}
    second = api.response(api.push({}, {"Lambda-Runtime-Trace-Id": ""}))
    assert second == {"trace": None, "clientContext": None, "identity": None}


@needs_node
def test_node_console_format(node, api):
    node.write(
        "index.js",
        """
        console.log('at init');
        exports.handler = async (event) => {
          console.log('hello %s', 'world', { n: 1 });
          console.info('info');
          console.warn('warn');
          console.error('error');
          console.debug('debug');
          console.log('two\\nlines');
          return 'ok';
        };
        """,
    )
    node.start("index.handler")
    rid = api.push({})
    assert api.response(rid) == "ok"
    lines = api.outcome(rid)[1]["log"].split("\n")
    expected = [
        ("undefined", "INFO", "at init"),
        (rid, "INFO", "hello world { n: 1 }"),
        (rid, "INFO", "info"),
        (rid, "WARN", "warn"),
        (rid, "ERROR", "error"),
        (rid, "DEBUG", "debug"),
        (rid, "INFO", "two\rlines"),
    ]
    for request_id, level, message in expected:
        pattern = rf"{ISO_TS}\t{re.escape(request_id)}\t{level}\t{re.escape(message)}"
        assert any(re.fullmatch(pattern, l) for l in lines), (pattern, lines)


@needs_node
def test_node_log_level_filter(node, api):
    node.write(
        "index.js",
        "exports.handler = async () => { console.debug('quiet'); console.warn('loud'); return 1; };\n",
    )
    node.start("index.handler", {"AWS_LAMBDA_LOG_LEVEL": "WARN"})
    rid = api.push({})
    assert api.response(rid) == 1
    log = api.outcome(rid)[1]["log"]
    assert "loud" in log and "quiet" not in log


@needs_node
def test_node_uncaught_exception_during_invoke_fails_it_and_exits(node, api):
    node.write(
        "index.js",
        """
        exports.handler = (event, context, callback) => {
          setTimeout(() => { throw new RangeError('async throw'); }, 10);
        };
        """,
    )
    node.start("index.handler")
    err, _ = api.error(api.push({}))
    assert err["errorType"] == "RangeError"
    assert err["errorMessage"] == "async throw"
    assert node.exit_code() == 129


@needs_node
def test_node_unhandled_rejection_during_invoke_fails_it_and_exits(node, api):
    node.write(
        "index.js",
        "exports.handler = (event, context, callback) => { Promise.reject(new Error('nope')); };\n",
    )
    node.start("index.handler")
    err, record = api.error(api.push({}))
    assert err["errorType"] == "Runtime.UnhandledPromiseRejection"
    assert err["errorMessage"] == "Error: nope"
    assert "Unhandled Promise Rejection" in record["log"]
    assert node.exit_code() == 128


@needs_node
def test_node_require_finds_modules_at_the_task_root(node, api):
    # As in Lambda, NODE_PATH lists the task root (after the layers' directories).
    node.write("shared.js", "module.exports = 'from the task root';\n")
    node.write("src/app.js", "exports.handler = async () => require('shared');\n")
    node.start("src/app.handler")
    assert api.response(api.push({})) == "from the task root"


def _load_python_bootstrap():
    import importlib.util

    spec = importlib.util.spec_from_file_location("stratus_bootstrap", PY_BOOTSTRAP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_python_json_fast_path_matches_the_json_module():
    import decimal

    bs = _load_python_bootstrap()
    values = [
        None, True, 0, -7, 2**70, 1.5, 1e300, float("inf"), "", "h\u00e9llo \u2603 \"q\" \\ \n",
        "\ud83d\ude00", [], {}, [1, [2, {"a": None}]], {"k": [1.25, "v"], "n": {"x": False}},
        (1, 2), {1: "int key", None: "null key", 2.5: "float key"},
    ]
    for v in values:
        assert bs.to_json(v) == json.dumps(v), v
        text = json.dumps(v)
        assert bs.from_json(text) == json.loads(text), text
        assert bs.from_json(text.encode("utf-8")) == json.loads(text.encode("utf-8")), text
    nan = bs.from_json("[NaN, -Infinity]")
    assert nan[0] != nan[0] and nan[1] == float("-inf")
    assert bs.from_json("  \n {\"a\": 1} \t") == {"a": 1}
    # Decimals as Lambda's runtime writes them.
    assert bs.to_json({"d": decimal.Decimal("3"), "f": decimal.Decimal("2.5")}) == '{"d": 3, "f": 2.5}'
    # What the fast path declines still decodes (UTF-16, a UTF-8 BOM)...
    assert bs.from_json('{"u": 1}'.encode("utf-16")) == {"u": 1}
    assert bs.from_json(b"\xef\xbb\xbf[1]") == [1]
    # ...and errors are json's own, word for word.
    for bad in ["", "{", "[1] x", "\ufeff[1]", "{'a': 1}", b"\xff"]:
        with pytest.raises(Exception) as ours:
            bs.from_json(bad)
        with pytest.raises(Exception) as theirs:
            json.loads(bad)
        assert (type(ours.value), str(ours.value)) == (type(theirs.value), str(theirs.value)), bad
    with pytest.raises(TypeError, match="Object of type object is not JSON serializable"):
        bs.to_json({"o": object()})
    circular = []
    circular.append(circular)
    with pytest.raises(ValueError, match="Circular reference"):
        bs.to_json(circular)
    # The fast path keeps its promise: a fresh interpreter that loads the runtime and
    # converts ordinary documents never imports json (nor re).
    probe = textwrap.dedent(f"""
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location("bs", {str(PY_BOOTSTRAP)!r})
        bs = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bs)
        assert bs.from_json(b'{{"a": [1, 2.5, "x", null]}}') == {{"a": [1, 2.5, "x", None]}}
        assert bs.to_json({{"b": [True, 3]}}) == '{{"b": [true, 3]}}'
        print(sorted(m for m in ("json", "re", "socket", "logging") if m in sys.modules))
    """)
    out = subprocess.run([PYTHON, "-c", probe], capture_output=True, text=True, timeout=WAIT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout
