"""Hostile clients: bodies without credentials are refused unread, and bodies with
credentials share one memory budget, so neither many large uploads nor slow ones can grow the
server without bound, while a bystander function keeps answering."""

from __future__ import annotations

import json
import socket
import threading

from helpers import create_function, health, invoke, sign_request, wait_until

INVOKE = "/2015-03-31/functions/{}/invocations"
BYSTANDER = {"app.py": "def handler(event, context):\n    return {'echo': event}\n"}
MB = 1 << 20


def rss_bytes(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def raw_head(server, path: str, length: int, *, access_key: str, secret_key: str) -> bytes:
    """A signed request's head declaring `length` body bytes (signed over a body of that
    length, so it would verify if it were all sent)."""
    req = sign_request("POST", server.url + path, access_key=access_key, secret_key=secret_key,
                       body=b"x" * length)
    lines = [f"POST {path} HTTP/1.1"]
    lines += [f"{k}: {v}" for k, v in req.headers.items() if k.lower() != "content-length"]
    lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def connect(server) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def status_of(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1]), data


def test_unauthenticated_large_bodies_are_refused_unread(server, lam):
    create_function(lam, "bystander", BYSTANDER, runtime="python3.11", handler="app.handler")
    pid = server.proc.pid
    before = rss_bytes(pid)
    body = 60 * MB
    head = raw_head(server, INVOKE.format("bystander"), body,
                    access_key="AKIAUNKNOWNUNKNOWN00", secret_key="x" * 40)
    statuses: list[int] = []

    def client():
        s = connect(server)
        s.sendall(head)
        sent, piece = 0, b"x" * MB
        s.settimeout(2)
        try:
            # Push as much of the body as the server lets through.
            while sent < body:
                s.sendall(piece)
                sent += len(piece)
        except OSError:
            pass
        s.settimeout(30)
        statuses.append(status_of(s)[0])
        s.close()

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert statuses == [403] * 8
    # Eight 60 MB bodies were offered; the server kept (almost) none of them.
    assert rss_bytes(pid) - before < 64 * MB, (before, rss_bytes(pid))
    assert invoke(lam, "bystander", {"n": 1}).payload == {"echo": {"n": 1}}


def test_bodies_with_credentials_share_one_budget(server_factory, tmp_path):
    cfg = tmp_path / "budget.toml"
    cfg.write_text("body_memory_mb = 8\nbody_timeout = 3\n")
    server = server_factory(args=["--config", str(cfg)])
    lam = server.client("lambda")
    create_function(lam, "bystander", BYSTANDER, runtime="python3.11", handler="app.handler")
    ak = server.credentials["aws_access_key_id"]
    sk = server.credentials["aws_secret_access_key"]
    head = raw_head(server, INVOKE.format("bystander"), 6 * MB, access_key=ak, secret_key=sk)

    # A slow client with good credentials: 6 MB declared, sent a byte at a time.
    stop = threading.Event()
    holder = connect(server)
    holder.sendall(head)

    def dribble():
        while not stop.wait(0.5):
            try:
                holder.sendall(b"x")
            except OSError:
                return

    dribbler = threading.Thread(target=dribble)
    dribbler.start()
    try:
        wait_until(lambda: health(server)["bodies"]["held_bytes"] >= 6 * MB, timeout=10,
                   what="the slow body's share taken")
        # Another 6 MB does not fit: it waits, then gets a throttling error (which the SDKs
        # retry), without a byte of it read.
        s = connect(server)
        s.sendall(head)
        status, data = status_of(s)
        s.close()
        assert status == 429, data
        assert b"TooManyRequestsException" in data
        # Small requests still fit beside it: the bystander answers.
        assert invoke(lam, "bystander", {"n": 2}).payload == {"echo": {"n": 2}}
    finally:
        stop.set()
        dribbler.join()
        holder.close()
    # The slow client gone, its share is returned.
    wait_until(lambda: health(server)["bodies"]["held_bytes"] == 0, timeout=10,
               what="the budget returned")
    assert json.loads(json.dumps(health(server)["bodies"]))["budget_bytes"] == 8 * MB
