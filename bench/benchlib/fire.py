"""Firing N invocations at once: N connections opened and N signed requests prepared
beforehand, then every request written from one thread in a tight loop and the responses
collected with a selector, so the client adds no thread start-up or signing to the burst.
Optionally polls `/_stratus/health` from a second thread while the burst runs."""

from __future__ import annotations

import selectors
import socket
import threading
import time
from dataclasses import dataclass, field

from .stratus import RawConn, Server, lambda_health


@dataclass
class Burst:
    n: int
    t_send_ms: float  # how long writing all N requests took
    done_ms: list[float]  # per request, from t0 to its last response byte
    statuses: list[int]
    function_errors: int
    health: list[tuple[float, int, int]] = field(default_factory=list)  # (ms, envs, in flight)
    failures: list[str] = field(default_factory=list)  # the first few failed answers

    def describe_failures(self) -> str:
        return f"{self.ok} of {self.n} succeeded; first failures: " + " | ".join(self.failures)

    @property
    def ok(self) -> int:
        return sum(1 for s in self.statuses if s == 200) - self.function_errors


def _parse(buf: bytes):
    """(status, headers, complete?) for a buffered response."""
    if b"\r\n\r\n" not in buf:
        return None
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    return status, headers, len(rest) >= n


def burst(server: Server, name: str, n: int, payload: bytes, *, poll_health: bool = False,
          poll_interval: float = 0.002, timeout: float = 120.0) -> Burst:
    request = server.invoke_request(name, payload)
    socks = []
    for _ in range(n):
        s = socket.create_connection((server.host, server.port), timeout=30)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        socks.append(s)
    health: list[tuple[float, int, int]] = []
    stop = threading.Event()
    t0_box: list[float] = []
    started = threading.Event()

    def poller():
        conn = RawConn(server.host, server.port, timeout=10).connect()
        req = (f"GET /_stratus/health HTTP/1.1\r\nHost: {server.host}:{server.port}\r\n\r\n"
               ).encode()
        started.wait()
        while not stop.is_set():
            t = time.perf_counter()
            doc = lambda_health(conn.request(req).json())
            health.append(((t - t0_box[0]) * 1e3, int(doc.get("environments", -1)),
                           int(doc.get("invocations_in_flight", -1))))
            time.sleep(poll_interval)
        conn.close()

    th = None
    if poll_health:
        th = threading.Thread(target=poller, daemon=True)
        th.start()
    sel = selectors.DefaultSelector()
    bufs = {}
    for i, s in enumerate(socks):
        bufs[i] = b""
    done = [float("nan")] * n
    statuses = [0] * n
    ferr = 0
    failures: list[str] = []
    t0 = time.perf_counter()
    t0_box.append(t0)
    started.set()
    for s in socks:
        s.sendall(request)
    t_send = time.perf_counter()
    for i, s in enumerate(socks):
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, i)
    left = n
    deadline = time.monotonic() + timeout
    try:
        while left and time.monotonic() < deadline:
            for key, _ in sel.select(0.5):
                i = key.data
                try:
                    chunk = key.fileobj.recv(65536)
                except BlockingIOError:
                    continue
                if chunk:
                    bufs[i] += chunk
                parsed = _parse(bufs[i])
                if (parsed and parsed[2]) or not chunk:
                    done[i] = (time.perf_counter() - t0) * 1e3
                    sel.unregister(key.fileobj)
                    left -= 1
                    if parsed:
                        statuses[i] = parsed[0]
                        bad = parsed[0] != 200 or "x-amz-function-error" in parsed[1]
                        if "x-amz-function-error" in parsed[1]:
                            ferr += 1
                        if bad and len(failures) < 3:
                            body = bufs[i].split(b"\r\n\r\n", 1)[1][:300]
                            failures.append(f"{parsed[0]} {body.decode(errors='replace')}")
                    elif len(failures) < 3:
                        failures.append("connection closed without an answer")
    finally:
        stop.set()
        if th is not None:
            th.join(timeout=10)
        sel.close()
        for s in socks:
            s.close()
    return Burst(n, (t_send - t0) * 1e3, done, statuses, ferr, health, failures)
