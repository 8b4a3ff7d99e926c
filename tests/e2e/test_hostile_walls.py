"""Hostile functions against the walls between environments (issue 17, items 3 and 4): each
case is a real function doing the harm, and a bystander function keeps answering correctly.

Network: an environment reaches the outside (a test host in a network namespace of the
test's own, as in test_network.py) and the Stratus API at its AWS_ENDPOINT_URL, but not
another environment's listener, a link-local address (a listener the test puts on
169.254.77.x inside its own namespace: never the machine's real 169.254.169.254), a host
port, nor anything over IPv6. Kernel: io_uring is refused, and one function spending its
inotify instances leaves a bystander able to create one."""

from __future__ import annotations

import json
import random
import shutil
import socket
import subprocess
import sys
import uuid

import pytest

from helpers import create_function, invoke, wait_until

BYSTANDER = """
def handler(event, context):
    return {"echo": event["n"] * 2}
"""

# Serves on port 7000 from a background socket kept between invocations; says its address.
LISTENER = """
import socket
held = []
def handler(event, context):
    if not held:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", 7000))
        s.listen(16)
        held.append(s)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.connect(("10.233.0.1", 9))  # a route lookup only: UDP connect sends nothing
    address = u.getsockname()[0]
    u.close()
    # Control: the listener answers on that address (from inside its own environment).
    socket.create_connection((address, 7000), timeout=2).close()
    return {"address": address}
"""

PROBE = """
import datetime, hashlib, hmac, json, os, socket, threading, urllib.request

def connect(host, port):
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect((host, port))
        try:
            return "connected: " + s.recv(16).decode(errors="replace")
        except OSError:
            return "connected"
    except Exception as e:
        return type(e).__name__
    finally:
        s.close()

def list_functions():
    # A SigV4-signed ListFunctions to AWS_ENDPOINT_URL with the function's own credentials.
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    region = os.environ["AWS_REGION"]
    path = "/2015-03-31/functions/"
    amz = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    headers = {"host": endpoint.split("//", 1)[1], "x-amz-date": amz,
               "x-amz-security-token": os.environ["AWS_SESSION_TOKEN"]}
    names = sorted(headers)
    canonical = "\\n".join(["GET", path, "", "".join(f"{k}:{headers[k]}\\n" for k in names),
                           ";".join(names), hashlib.sha256(b"").hexdigest()])
    scope = f"{amz[:8]}/{region}/lambda/aws4_request"
    to_sign = "\\n".join(["AWS4-HMAC-SHA256", amz, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + os.environ["AWS_SECRET_ACCESS_KEY"]).encode()
    for part in (amz[:8], region, "lambda", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    auth = (f"AWS4-HMAC-SHA256 Credential={os.environ['AWS_ACCESS_KEY_ID']}/{scope}, "
            f"SignedHeaders={';'.join(names)}, Signature={signature}")
    req = urllib.request.Request(endpoint + path, headers={
        "X-Amz-Date": amz, "X-Amz-Security-Token": headers["x-amz-security-token"],
        "Authorization": auth})
    body = json.loads(urllib.request.urlopen(req, timeout=5).read())
    return sorted(f["FunctionName"] for f in body["Functions"])

def handler(event, context):
    out = {}
    def run(name, host, port):
        out[name] = connect(host, port)
    threads = [threading.Thread(target=run, args=(name, host, port))
               for name, (host, port) in event["targets"].items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        out["api"] = list_functions()
    except Exception as e:
        out["api"] = "error: " + repr(e)
    try:
        out["ipv6"] = [l for l in open("/proc/net/if_inet6").read().splitlines()
                       if not l.rstrip().endswith(" lo")]
    except FileNotFoundError:
        out["ipv6"] = []
    return out
"""

IO_URING = """
import ctypes, errno
libc = ctypes.CDLL(None, use_errno=True)
def handler(event, context):
    params = ctypes.create_string_buffer(120)
    r = libc.syscall(425, 4, params)  # io_uring_setup(4, &params)
    return {"result": r, "errno": errno.errorcode.get(ctypes.get_errno())}
"""

# Takes inotify instances until the kernel refuses one, and keeps them.
INOTIFY_HOG = """
import ctypes, errno
libc = ctypes.CDLL(None, use_errno=True)
held = []
def handler(event, context):
    err = None
    while len(held) < 5000:
        fd = libc.inotify_init1(0)
        if fd < 0:
            err = errno.errorcode.get(ctypes.get_errno())
            break
        held.append(fd)
    return {"held": len(held), "errno": err}
"""

INOTIFY_ONE = """
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
def handler(event, context):
    fd = libc.inotify_init1(0)
    if fd < 0:
        return {"fd": fd, "errno": errno.errorcode.get(ctypes.get_errno())}
    os.close(fd)
    return {"fd": fd, "errno": None}
"""

# Answers a few bytes to whoever connects, on every address of its namespace.
SERVE = ("import socket\n"
         "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
         "s.bind(('0.0.0.0', 8080)); s.listen(16)\n"
         "while True:\n"
         "    c, _ = s.accept(); c.sendall(b'outside'); c.close()\n")


def sh(*args):
    subprocess.run(args, check=True, capture_output=True)


def make(lam, name, code, **kw):
    create_function(lam, name, {"app.py": code}, runtime="python3.11", handler="app.handler",
                    Timeout=30, **kw)


def call(lam, name, event=None):
    inv = invoke(lam, name, event or {})
    assert inv.function_error is None, inv.raw[:2000]
    return inv.payload


def bystander_answers(lam, n):
    assert call(lam, "bystander", {"n": n}) == {"echo": 2 * n}


@pytest.fixture
def outside():
    """A test host in its own network namespace that answers on port 8080 at a TEST-NET-2
    address and at a link-local one (random /30s, so concurrent runs do not collide), both
    routed from the host. Yields (ordinary address, link-local address, host's address)."""
    tag = uuid.uuid4().hex[:6]
    ns, host_if = f"e2e-wall-{tag}", f"e2ew{tag}"
    net, ll = 4 * random.randrange(16, 63), 4 * random.randrange(1, 63)
    sh("ip", "netns", "add", ns)
    server = None
    try:
        sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", "out0", "netns", ns)
        sh("ip", "addr", "add", f"198.51.100.{net + 1}/30", "dev", host_if)
        sh("ip", "addr", "add", f"169.254.77.{ll + 1}/30", "dev", host_if)
        sh("ip", "link", "set", host_if, "up")
        inside = ["ip", "netns", "exec", ns]
        sh(*inside, "ip", "addr", "add", f"198.51.100.{net + 2}/30", "dev", "out0")
        sh(*inside, "ip", "addr", "add", f"169.254.77.{ll + 2}/30", "dev", "out0")
        sh(*inside, "ip", "link", "set", "out0", "up")
        sh(*inside, "ip", "link", "set", "lo", "up")
        server = subprocess.Popen([*inside, sys.executable, "-c", SERVE],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        addresses = (f"198.51.100.{net + 2}", f"169.254.77.{ll + 2}")

        def up():
            try:
                for a in addresses:
                    socket.create_connection((a, 8080), timeout=1).close()
                return True
            except OSError:
                return False
        wait_until(up, timeout=10, what="the outside test host")
        yield (*addresses, f"198.51.100.{net + 1}")
    finally:
        if server:
            server.kill()
            server.wait()
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2's ip")
def test_an_environment_reaches_the_outside_and_the_api_but_no_neighbour_host_or_link_local(
        exec_server, exec_lam, outside):
    ordinary, link_local, host_address = outside
    make(exec_lam, "bystander", BYSTANDER)
    make(exec_lam, "listener", LISTENER)
    make(exec_lam, "probe", PROBE)
    bystander_answers(exec_lam, 1)
    neighbour = call(exec_lam, "listener")["address"]
    assert neighbour.startswith("10.233."), neighbour
    gateway = neighbour.rsplit(".", 1)[0] + "." + str(int(neighbour.rsplit(".", 1)[1]) - 1)
    # A service on every host address (the gateways of sandboxes included).
    host_listener = socket.socket()
    host_listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    host_listener.bind(("0.0.0.0", 0))
    host_listener.listen(8)
    host_port = host_listener.getsockname()[1]
    try:
        out = call(exec_lam, "probe", {"targets": {
            "outside": [ordinary, 8080],
            "link_local": [link_local, 8080],
            "neighbour": [neighbour, 7000],
            "host_via_gateway": [gateway, host_port],
            "host_via_its_outside_address": [host_address, host_port],
        }})
    finally:
        host_listener.close()
    # The control: the same listener, on an ordinary address, is reachable.
    assert out["outside"] == "connected: outside", out
    assert not out["link_local"].startswith("connected"), out
    assert not out["neighbour"].startswith("connected"), out
    assert not out["host_via_gateway"].startswith("connected"), out
    assert not out["host_via_its_outside_address"].startswith("connected"), out
    # The Stratus API at AWS_ENDPOINT_URL answers a signed call with this server's functions.
    assert out["api"] == ["bystander", "listener", "probe"], out
    # No IPv6 on the pair (a link-local IPv6 address would lead to the host).
    assert out["ipv6"] == [], out
    # The neighbour still serves its own side, and the bystander still answers.
    assert call(exec_lam, "listener")["address"] == neighbour
    bystander_answers(exec_lam, 2)


def test_io_uring_is_refused(exec_lam):
    make(exec_lam, "uring", IO_URING)
    got = call(exec_lam, "uring")
    assert got["result"] == -1 and got["errno"] in ("EPERM", "ENOSYS"), got


def test_spending_inotify_instances_leaves_others_theirs(exec_lam):
    make(exec_lam, "bystander", BYSTANDER)
    make(exec_lam, "hog", INOTIFY_HOG)
    make(exec_lam, "watcher", INOTIFY_ONE)
    bystander_answers(exec_lam, 1)
    hog = call(exec_lam, "hog")
    # The hog reached the kernel's per-user limit (not the 5000 it stops at on its own).
    assert hog["errno"] == "EMFILE" and 0 < hog["held"] < 5000, hog
    # Its instances stay held (the environment is warm): another function still gets one.
    assert call(exec_lam, "hog")["held"] == hog["held"]
    watcher = call(exec_lam, "watcher")
    assert watcher["errno"] is None and watcher["fd"] >= 0, watcher
    bystander_answers(exec_lam, 2)
