"""Stratus's managed Python runtime.

Started as ``<python> /var/runtime/bootstrap.py`` with the function's code in
``$LAMBDA_TASK_ROOT``. It loads the handler named by ``_HANDLER`` and then serves
invocations from the Lambda Runtime API at ``$AWS_LAMBDA_RUNTIME_API``, behaving
the way Lambda's own Python runtime does: the same context object, the same error
types and messages, the same error documents and log lines.

Standard library only, and only light modules at start-up, because every module
imported here is paid on every cold start: the HTTP client is a small keep-alive
HTTP/1.1 client over one ``_socket`` (``http.client`` alone would double the
runtime's start-up time, and ``socket`` adds 4 ms of enum building); JSON goes
through ``_json``, the C half of ``json`` (whose Python half imports ``re``: 6 ms),
with ``json`` itself imported only for what the fast path declines, errors
included; ``logging`` (10 ms) is configured the moment the function imports it;
``traceback`` is imported on the first error.
"""

import _json
import _socket
import importlib
import io
import os
import sys
import time

RUNTIME_PATH = "/2018-06-01/runtime"
# What Lambda says a response may weigh, for the error it reports when it is heavier.
DEFAULT_MAX_RESPONSE_BYTES = 6291556
# Over this, a response whose upload the Runtime API cut short was refused for its size.
HARD_MAX_RESPONSE_BYTES = 6 * 1024 * 1024

MARSHAL_ERROR = "Runtime.MarshalError"
UNMARSHAL_ERROR = "Runtime.UnmarshalError"
USER_CODE_SYNTAX_ERROR = "Runtime.UserCodeSyntaxError"
HANDLER_NOT_FOUND = "Runtime.HandlerNotFound"
IMPORT_MODULE_ERROR = "Runtime.ImportModuleError"
BUILT_IN_MODULE_CONFLICT = "Runtime.BuiltInModuleConflict"
MALFORMED_HANDLER_NAME = "Runtime.MalformedHandlerName"
CONTEXT_UNMARSHAL_ERROR = "Runtime.LambdaContextUnmarshalError"
RESPONSE_TOO_LARGE = "Function.ResponseSizeTooLarge"

# Error reports on stdout keep their lines in one log event: "\r" between lines, and
# no-break spaces for the traceback's indentation.
ERROR_LINE_SEPARATOR = "\r"
ERROR_INDENT = "\u00a0"

_THIS_FILE = os.path.abspath(__file__)
_current_request_id = None


class Fault(Exception):
    """A failure the runtime names itself (Runtime.*), as opposed to the user's exception."""

    def __init__(self, error_type, message, trace=None):
        Exception.__init__(self, message)
        self.error_type = error_type
        self.message = message
        self.trace = trace


# ---------------------------------------------------------------------------------------
# Runtime API client


class RuntimeApiClosed(Exception):
    """The Runtime API closed the connection without answering."""


def _quote(text):
    safe = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
    if all(c in safe for c in text):
        return text
    return "".join(c if c in safe else "".join("%%%02X" % b for b in c.encode("utf-8")) for c in text)


class _SocketReader(io.RawIOBase):
    """What ``socket.makefile("rb")`` gives, for a bare ``_socket.socket``."""

    def __init__(self, sock):
        io.RawIOBase.__init__(self)
        self._sock = sock

    def readable(self):
        return True

    def readinto(self, buf):
        while True:
            try:
                return self._sock.recv_into(buf)
            except InterruptedError:
                continue


class RuntimeApi:
    """One persistent HTTP/1.1 connection to the Runtime API, reopened when it drops."""

    def __init__(self, address):
        self.address = address
        host, sep, port = address.rpartition(":")
        if not sep or not port.isdigit():
            host, port = address, "80"
        self.host = host.strip("[]") or "127.0.0.1"
        self.port = int(port)
        self.sock = None
        self.rfile = None

    def close(self):
        if self.rfile is not None:
            try:
                self.rfile.close()
            except OSError:
                pass
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None
        self.rfile = None

    def _connect(self):
        error = OSError("no address for %s" % self.host)
        host = self.host
        try:
            # A name given as text goes through the IDNA codec, whose first use imports
            # `encodings.idna`, `stringprep` and `unicodedata`: 8.5 ms of a cold start.
            host = host.encode("ascii")
        except UnicodeEncodeError:
            pass
        for family, kind, proto, _, address in _socket.getaddrinfo(
            host, self.port, 0, _socket.SOCK_STREAM
        ):
            sock = _socket.socket(family, kind, proto)
            try:
                sock.connect(address)
            except OSError as e:
                sock.close()
                error = e
                continue
            break
        else:
            raise error
        try:
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self.sock = sock
        self.rfile = io.BufferedReader(_SocketReader(sock), 65536)

    def request(self, method, path, body=b"", headers=None):
        """Sends one request and returns ``(status, headers, body)``; header names are lower case.

        A kept-alive connection the server has meanwhile closed is reopened once. Raises
        ``OSError`` or ``RuntimeApiClosed`` when the server cannot be reached or hangs up
        before answering.
        """
        head = ["%s %s HTTP/1.1\r\nHost: %s\r\n" % (method, path, self.address)]
        if headers:
            for name, value in headers.items():
                head.append("%s: %s\r\n" % (name, value))
        if method != "GET" or body:
            head.append("Content-Length: %d\r\n" % len(body))
        head.append("\r\n")
        data = "".join(head).encode("latin-1", "replace")
        # Small bodies go out with the head in one write; big ones are not copied.
        separate = len(body) >= 65536
        if body and not separate:
            data += body
        for attempt in (0, 1):
            reused = self.sock is not None
            if not reused:
                self._connect()
            sent = True
            try:
                self.sock.sendall(data)
                if separate:
                    self.sock.sendall(body)
            except OSError:
                # The server may have answered early (413) and closed: read what it said.
                sent = False
            try:
                return self._read_response()
            except (OSError, RuntimeApiClosed):
                self.close()
                # Only a connection found dead on reuse is worth one more try.
                if attempt or not reused or (not sent and len(body) > HARD_MAX_RESPONSE_BYTES):
                    raise
        raise RuntimeApiClosed()

    def _readline(self):
        line = self.rfile.readline(65537)
        if not line.endswith(b"\n"):
            raise RuntimeApiClosed()
        return line

    def _read_exact(self, n):
        data = self.rfile.read(n)
        if len(data) != n:
            raise RuntimeApiClosed()
        return data

    def _read_response(self):
        while True:
            parts = self._readline().split(None, 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
                raise RuntimeApiClosed()
            status = int(parts[1])
            headers = {}
            while True:
                line = self._readline()
                if line in (b"\r\n", b"\n"):
                    break
                try:
                    text = line.decode("utf-8")
                except UnicodeDecodeError:
                    text = line.decode("latin-1")
                name, _, value = text.partition(":")
                headers[name.strip().lower()] = value.strip()
            if 100 <= status < 200:
                continue  # an interim answer ("100 Continue"): the real one follows
            break
        keep = parts[0] != b"HTTP/1.0" and headers.get("connection", "").lower() != "close"
        if status in (204, 304):
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            chunks = []
            while True:
                size = int(self._readline().split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while self._readline() not in (b"\r\n", b"\n"):
                        pass  # trailers
                    break
                chunks.append(self._read_exact(size))
                self._readline()
            body = b"".join(chunks)
        elif "content-length" in headers:
            body = self._read_exact(int(headers["content-length"]))
        else:
            body = self.rfile.read()
            keep = False
        if not keep:
            self.close()
        return status, headers, body

    # The Runtime API's operations.

    def next_invocation(self):
        status, headers, body = self.request("GET", RUNTIME_PATH + "/invocation/next")
        if status != 200:
            raise RuntimeError(
                "Runtime API answered %d to GET /runtime/invocation/next: %r" % (status, body[:200])
            )
        return headers, body

    def post_response(self, request_id, payload, content_type):
        path = "%s/invocation/%s/response" % (RUNTIME_PATH, _quote(request_id))
        try:
            status, _, body = self.request("POST", path, payload, {"Content-Type": content_type})
        except (OSError, RuntimeApiClosed):
            if len(payload) <= HARD_MAX_RESPONSE_BYTES:
                raise
            # The upload was cut short, as the Runtime API does with an oversized response.
            status, body = 413, b""
        if status == 413:
            self.post_error(request_id, make_error(_too_large_message(body), RESPONSE_TOO_LARGE, None, request_id))

    def post_error(self, request_id, error):
        path = "%s/invocation/%s/error" % (RUNTIME_PATH, _quote(request_id))
        headers = {
            "Content-Type": "application/json",
            "Lambda-Runtime-Function-Error-Type": "Unhandled",
        }
        try:
            self.request("POST", path, to_json(error).encode("utf-8"), headers)
        except (OSError, RuntimeApiClosed):
            pass  # the invocation is over either way; the next GET tells whether the API is there

    def post_init_error(self, error):
        headers = {
            "Content-Type": "application/json",
            "Lambda-Runtime-Function-Error-Type": error["errorType"],
        }
        self.request("POST", RUNTIME_PATH + "/init/error", to_json(error).encode("utf-8"), headers)


def _too_large_message(body):
    limit = DEFAULT_MAX_RESPONSE_BYTES
    try:
        text = body.decode("utf-8", "replace")
        start = text.index("(") + 1
        end = text.index(" bytes)", start)
        limit = int(text[start:end])
    except ValueError:
        pass
    return "Response payload size exceeded maximum allowed payload size (%d bytes)." % limit


# ---------------------------------------------------------------------------------------
# JSON


def _decimal_default(obj):
    import decimal

    if isinstance(obj, decimal.Decimal):
        if obj.is_nan():
            return float("nan")
        if obj == obj.to_integral_value() and obj.as_tuple().exponent >= 0:
            return int(obj)
        return float(obj)
    raise TypeError("Object of type %s is not JSON serializable" % type(obj).__name__)


def _ensure_ascii():
    # From Python 3.12 on, Lambda's runtime writes non-ASCII characters as they are.
    env = os.environ.get("AWS_EXECUTION_ENV", "")
    prefix = "AWS_Lambda_python3."
    if env.startswith(prefix):
        minor = env[len(prefix):]
        if minor.isdigit() and int(minor) >= 12:
            return False
    return True


class _ScanContext(object):
    """What ``_json.make_scanner`` reads from a default ``json.JSONDecoder``."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__


_scan_once = None
_JSON_SPACE = " \t\n\r"


def from_json(data):
    """``json.loads(data)``, by ``json``'s own C scanner; what it declines (other encodings,
    invalid documents) goes to ``json.loads``, which gives the answer or the exact error."""
    global _scan_once
    try:
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
        if _scan_once is None:
            _scan_once = _json.make_scanner(_ScanContext())
        start = len(text) - len(text.lstrip(_JSON_SPACE))
        value, end = _scan_once(text, start)
        if not text[end:].strip(_JSON_SPACE):
            return value
    except Exception:  # StopIteration (nothing to scan) included
        pass
    import json

    return json.loads(data)


def to_json(obj):
    """``json.dumps(obj, default=..., ensure_ascii=...)`` by ``json``'s own C encoder; on any
    failure ``json`` itself encodes, or raises its exact error."""
    ascii = _ensure_ascii()
    try:
        encode = _json.make_encoder(
            {},  # markers: circular-reference detection, fresh for every document
            _decimal_default,
            _json.encode_basestring_ascii if ascii else _json.encode_basestring,
            None,  # indent
            ": ",
            ", ",
            False,  # sort_keys
            False,  # skipkeys
            True,  # allow_nan
        )
        return "".join(encode(obj, 0))
    except Exception:
        pass
    import json

    return json.JSONEncoder(default=_decimal_default, ensure_ascii=ascii).encode(obj)


def marshal_response(response):
    if isinstance(response, bytes):
        return response, "application/unknown"
    try:
        return to_json(response).encode("utf-8"), "application/json"
    except Exception as e:
        raise Fault(MARSHAL_ERROR, "Unable to marshal response: %s" % e)


def unmarshal_request(body, content_type):
    if content_type:
        media = content_type.split(";", 1)[0].strip().lower()
        if media != "application/json":
            return body
    if not body:
        return None
    try:
        return from_json(body)
    except Exception as e:
        raise Fault(UNMARSHAL_ERROR, "Unable to unmarshal input: %s" % e)


# ---------------------------------------------------------------------------------------
# The context object


class CognitoIdentity(object):
    __slots__ = ["cognito_identity_id", "cognito_identity_pool_id"]

    def __repr__(self):
        return "CognitoIdentity([cognito_identity_id=%s,cognito_identity_pool_id=%s])" % (
            self.cognito_identity_id,
            self.cognito_identity_pool_id,
        )


class Client(object):
    __slots__ = ["installation_id", "app_title", "app_version_name", "app_version_code", "app_package_name"]

    def __repr__(self):
        return "Client([%s])" % ",".join("%s=%s" % (f, getattr(self, f)) for f in self.__slots__)


class ClientContext(object):
    __slots__ = ["custom", "env", "client"]

    def __repr__(self):
        return "ClientContext([custom=%s,env=%s,client=%s])" % (self.custom, self.env, self.client)


def _object_from(cls, values):
    if values is None:
        return None
    if not isinstance(values, dict):
        values = {}
    obj = cls()
    for field in cls.__slots__:
        setattr(obj, field, values.get(field))
    return obj


class LambdaContext(object):
    def __init__(self, request_id, client_context, cognito_identity, deadline_ms, invoked_function_arn):
        env = os.environ
        self.aws_request_id = request_id
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME")
        self.memory_limit_in_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.invoked_function_arn = invoked_function_arn
        self.client_context = _object_from(ClientContext, client_context)
        if self.client_context is not None:
            self.client_context.client = _object_from(Client, self.client_context.client)
        self.identity = _object_from(CognitoIdentity, {})
        if isinstance(cognito_identity, dict):
            self.identity.cognito_identity_id = cognito_identity.get("cognitoIdentityId")
            self.identity.cognito_identity_pool_id = cognito_identity.get("cognitoIdentityPoolId")
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        remaining = self._deadline_ms - int(time.time() * 1000)
        return remaining if remaining > 0 else 0

    def log(self, msg):
        sys.stdout.write(str(msg))

    def __repr__(self):
        return (
            "LambdaContext([aws_request_id=%s,log_group_name=%s,log_stream_name=%s,function_name=%s,"
            "memory_limit_in_mb=%s,function_version=%s,invoked_function_arn=%s,client_context=%s,"
            "identity=%s])"
            % (
                self.aws_request_id,
                self.log_group_name,
                self.log_stream_name,
                self.function_name,
                self.memory_limit_in_mb,
                self.function_version,
                self.invoked_function_arn,
                self.client_context,
                self.identity,
            )
        )


def _parse_header_json(text, what):
    try:
        return from_json(text)
    except Exception as e:
        raise Fault(CONTEXT_UNMARSHAL_ERROR, "Unable to parse %s JSON: %s" % (what, e))


# ---------------------------------------------------------------------------------------
# Errors and logs


def make_error(message, error_type, stack_trace, request_id=None):
    return {
        "errorMessage": message if message else "",
        "errorType": error_type if error_type else "",
        "requestId": request_id if request_id is not None else "",
        "stackTrace": stack_trace if stack_trace else [],
    }


def error_from_exception(exc, request_id=None):
    """The error document for a user exception, its traceback starting in the user's code."""
    import traceback

    frames = [(f.filename, f.lineno, f.name, f.line) for f in traceback.extract_tb(exc.__traceback__)]
    for i, frame in enumerate(frames):
        if frame[0] != _THIS_FILE:
            frames = frames[i:]
            break
    return make_error(str(exc), type(exc).__name__, traceback.format_list(frames), request_id)


def _indent(line):
    stripped = line.lstrip(" ")
    return ERROR_INDENT * (len(line) - len(stripped)) + stripped


def log_error(error):
    description = "[ERROR]"
    if error.get("errorType"):
        description += " " + error["errorType"]
    if error.get("errorMessage"):
        if error.get("errorType"):
            description += ":"
        description += " " + error["errorMessage"]
    lines = [description]
    stack = error.get("stackTrace")
    if stack is not None:
        lines.append("Traceback (most recent call last):")
        for element in stack:
            if element == "":
                lines.append("")
            else:
                lines.extend(_indent(line) for line in element.splitlines())
    sys.stdout.write(ERROR_LINE_SEPARATOR.join(lines) + "\n")


class Unbuffered(object):
    """Wraps stdout/stderr so that every write reaches the log at once."""

    def __init__(self, stream):
        self.stream = stream

    def __getattr__(self, name):
        return getattr(self.stream, name)

    def write(self, text):
        n = self.stream.write(text)
        self.stream.flush()
        return n

    def writelines(self, lines):
        self.stream.writelines(lines)
        self.stream.flush()


def setup_logging(logging):
    """Gives the root logger Lambda's handler and format (and level, when configured)."""

    class RequestIdFilter(logging.Filter):
        def filter(self, record):
            record.aws_request_id = _current_request_id or ""
            return True

    class LambdaLogHandler(logging.Handler):
        """Writes each record as one log line (inner newlines become "\\r")."""

        def emit(self, record):
            try:
                text = self.format(record)
                if "\n" in text[:-1]:
                    text = text[:-1].replace("\n", "\r") + "\n"
                sys.stdout.write(text)
            except Exception:
                self.handleError(record)

    logging.Formatter.converter = time.gmtime
    handler = LambdaLogHandler()
    handler.setFormatter(
        logging.Formatter(
            "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n",
            "%Y-%m-%dT%H:%M:%S",
        )
    )
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    # Like Lambda: the root logger keeps Python's default level (WARNING) unless the
    # function's logging configuration names one.
    level = (os.environ.get("AWS_LAMBDA_LOG_LEVEL") or "").upper()
    if level in ("CRITICAL", "FATAL", "ERROR", "WARNING", "WARN", "INFO", "DEBUG", "NOTSET"):
        root.setLevel({"FATAL": "CRITICAL", "WARN": "WARNING"}.get(level, level))
    root.addHandler(handler)


class _AlreadyLoaded:
    """A loader for a module that is in hand: the import system takes it as it is, and
    it gets its own spec back."""

    def __init__(self, module, spec):
        self.module = module
        self.spec = spec

    def create_module(self, spec):
        return self.module

    def exec_module(self, module):
        module.__spec__ = self.spec


class LoggingOnImport:
    """Configures ``logging`` at the moment anything imports it.

    On Lambda the root logger has its handler before the function's code runs (so that,
    say, ``logging.basicConfig()`` does nothing); here the same holds from the first
    ``import logging`` on, and a function that never logs does not pay for the import.
    """

    def find_spec(self, name, path=None, target=None):
        if name != "logging":
            return None
        sys.meta_path.remove(self)
        import logging

        setup_logging(logging)
        # The import system prefers the spec of a module already in sys.modules, and would
        # load that one afresh: the module carries ours until it is taken as it is.
        spec = type(sys.__spec__)(
            "logging", _AlreadyLoaded(logging, logging.__spec__), is_package=True
        )
        logging.__spec__ = spec
        return spec


def flush_output():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


# ---------------------------------------------------------------------------------------
# Loading the handler


def setup_sys_path(task_root):
    here = os.path.dirname(_THIS_FILE)
    # The runtime's own directory goes last, after the function's code and layers.
    rest = [p for p in sys.path if p not in (here, task_root)]
    front = [task_root]
    version_dir = "/opt/python/lib/python%d.%d/site-packages" % sys.version_info[:2]
    for layer_dir in (version_dir, "/opt/python"):
        if os.path.isdir(layer_dir):
            front.append(layer_dir)
            if layer_dir in rest:
                rest.remove(layer_dir)
    sys.path[:] = front + rest + [here]


def load_handler(handler):
    try:
        modname, fname = handler.rsplit(".", 1)
    except ValueError as e:
        raise Fault(MALFORMED_HANDLER_NAME, "Bad handler '%s': %s" % (handler, e))

    try:
        if modname.split(".")[0] in sys.builtin_module_names:
            raise Fault(
                BUILT_IN_MODULE_CONFLICT,
                "Cannot use built-in module %s as a handler module" % modname,
            )
        module = importlib.import_module(modname.replace("/", "."))
    except ImportError as e:
        raise Fault(IMPORT_MODULE_ERROR, "Unable to import module '%s': %s" % (modname, e))
    except SyntaxError as e:
        trace = ['  File "%s" Line %s\n    %s' % (e.filename, e.lineno, e.text)]
        raise Fault(USER_CODE_SYNTAX_ERROR, "Syntax error in module '%s': %s" % (modname, e), trace)
    try:
        return getattr(module, fname)
    except AttributeError:
        raise Fault(HANDLER_NOT_FOUND, "Handler '%s' missing on module '%s'" % (fname, modname))


# ---------------------------------------------------------------------------------------
# The loop


def handle_invocation(api, request_handler, headers, body):
    global _current_request_id
    request_id = headers.get("lambda-runtime-aws-request-id", "")
    _current_request_id = request_id
    trace_id = headers.get("lambda-runtime-trace-id")
    if trace_id:
        os.environ["_X_AMZN_TRACE_ID"] = trace_id
    else:
        os.environ.pop("_X_AMZN_TRACE_ID", None)

    error = None
    try:
        client_context = headers.get("lambda-runtime-client-context")
        client_context = _parse_header_json(client_context, "Client Context") if client_context else None
        identity = headers.get("lambda-runtime-cognito-identity")
        identity = _parse_header_json(identity, "Cognito Identity") if identity else None
        try:
            deadline_ms = int(headers.get("lambda-runtime-deadline-ms", "0"))
        except ValueError:
            deadline_ms = 0
        context = LambdaContext(
            request_id,
            client_context,
            identity,
            deadline_ms,
            headers.get("lambda-runtime-invoked-function-arn"),
        )
        event = unmarshal_request(body, headers.get("content-type"))
        result = request_handler(event, context)
        payload, content_type = marshal_response(result)
    except Fault as f:
        error = make_error(f.message, f.error_type, f.trace, request_id)
    except Exception as e:
        error = error_from_exception(e, request_id)

    if error is not None:
        log_error(error)
        flush_output()
        api.post_error(request_id, error)
    else:
        flush_output()
        api.post_response(request_id, payload, content_type)


def _read_exactly(fd, n):
    data = b""
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def await_claim(fd):
    """Waits, in a zygote, for the sandbox to be claimed by a function.

    A zygote is this runtime started ahead of demand, in a sandbox that has no function yet
    and in Lambda's default environment. At the claim, Stratus writes the sandbox's spec to
    descriptor ``fd`` (a 4-byte little-endian length, then JSON): its environment and
    working directory become ours, as if we had been started with them. (Stratus only
    hands a zygote functions whose environment agrees with ours on every variable Python
    reads at start-up, so nothing else differs.)
    """
    header = _read_exactly(fd, 4)
    spec = header and _read_exactly(fd, int.from_bytes(header, "little"))
    if not spec:
        sys.exit(1)  # discarded unclaimed (the sandbox goes with us)
    os.close(fd)
    spec = from_json(spec)
    # What the interpreter itself added at start-up (PEP 538's LC_CTYPE, when the locale
    # is coerced) it would have added for the function too: the function's start-up
    # variables are ours.
    with open("/proc/self/environ", "rb") as f:
        started_with = {e.split(b"=", 1)[0] for e in f.read().split(b"\0") if e}
    added = [(k, v) for k, v in os.environ.items() if os.fsencode(k) not in started_with]
    os.environ.clear()
    for entry in spec["env"]:
        key, _, value = entry.partition("=")
        os.environ[key] = value
    for key, value in added:
        os.environ.setdefault(key, value)
    os.chdir(spec["workdir"])


def main():
    zygote_fd = os.environ.get("_STRATUS_ZYGOTE_FD")
    if zygote_fd:
        await_claim(int(zygote_fd))
    sys.stdout = Unbuffered(sys.stdout)
    sys.stderr = Unbuffered(sys.stderr)

    address = os.environ.get("AWS_LAMBDA_RUNTIME_API")
    if not address:
        sys.stderr.write("AWS_LAMBDA_RUNTIME_API is not set\n")
        sys.exit(1)
    api = RuntimeApi(address)
    handler_name = os.environ.get("_HANDLER", "")
    task_root = os.environ.get("LAMBDA_TASK_ROOT") or "/var/task"
    setup_sys_path(task_root)

    if "logging" in sys.modules:
        setup_logging(sys.modules["logging"])
    else:
        sys.meta_path.insert(0, LoggingOnImport())
    try:
        request_handler = load_handler(handler_name)
    except Exception as e:
        if isinstance(e, Fault):
            error = make_error(e.message, e.error_type, e.trace)
        else:
            error = error_from_exception(e)
        log_error(error)
        flush_output()
        try:
            api.post_init_error(error)
        except (OSError, RuntimeApiClosed):
            pass
        sys.exit(1)

    while True:
        headers, body = api.next_invocation()
        handle_invocation(api, request_handler, headers, body)


if __name__ == "__main__":
    main()
