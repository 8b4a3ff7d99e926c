"""Outside network access from functions (Lambda's default), and what stays unreachable.

The "outside" is a test host in a network namespace of the test's own (a veth pair from the
host, 198.51.100.0/30 inside TEST-NET-2), serving HTTP; nothing leaves the machine."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import uuid

import pytest

from helpers import ROLE, make_zip, wait_until

pytestmark = pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2's ip")

PROBE = """
import socket, urllib.request
def handler(event, context):
    out = {}
    try:
        out["outside"] = urllib.request.urlopen(event["url"], timeout=5).read().decode()
    except Exception as e:
        out["outside"] = "error: " + repr(e)
    for name, (host, port) in event["targets"].items():
        s = socket.socket()
        s.settimeout(2)
        try:
            s.connect((host, port))
            out[name] = "connected"
        except Exception as e:
            out[name] = type(e).__name__
        finally:
            s.close()
    out["routes"] = len(open("/proc/net/route").read().splitlines()) - 1
    return out
"""

SERVE = "import http.server,sys\n" \
    "class H(http.server.BaseHTTPRequestHandler):\n" \
    "    def do_GET(self):\n" \
    "        self.send_response(200); self.end_headers(); self.wfile.write(b'hello from outside')\n" \
    "    def log_message(self, *a): pass\n" \
    "http.server.HTTPServer((sys.argv[1], 8080), H).serve_forever()\n"


def sh(*args):
    subprocess.run(args, check=True, capture_output=True)


@pytest.fixture
def outside():
    """A test host in its own network namespace, reachable from the host at 198.51.100.2."""
    tag = uuid.uuid4().hex[:6]
    ns, host_if = f"e2e-out-{tag}", f"e2eo{tag}"
    sh("ip", "netns", "add", ns)
    server = None
    try:
        sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", "out0", "netns", ns)
        sh("ip", "addr", "add", "198.51.100.1/30", "dev", host_if)
        sh("ip", "link", "set", host_if, "up")
        sh("ip", "netns", "exec", ns, "ip", "addr", "add", "198.51.100.2/30", "dev", "out0")
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "out0", "up")
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        server = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", SERVE,
                                   "198.51.100.2"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)

        def up():
            try:
                socket.create_connection(("198.51.100.2", 8080), timeout=1).close()
                return True
            except OSError:
                return False
        wait_until(up, timeout=10, what="the outside test host")
        yield "http://198.51.100.2:8080/"
    finally:
        if server:
            server.kill()
            server.wait()
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_functions_reach_the_outside_but_not_the_host(exec_server, outside):
    lam = exec_server.client("lambda")
    lam.create_function(FunctionName="net", Runtime="python3.11", Handler="app.handler", Role=ROLE,
                        Code={"ZipFile": make_zip({"app.py": PROBE})}, Timeout=20)
    lam.get_waiter("function_active_v2").wait(FunctionName="net")
    # A service on every host address, the sandboxes' gateways included.
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", 0))
    listener.listen()
    port = listener.getsockname()[1]
    server_port = int(exec_server.url.rsplit(":", 1)[1])
    try:
        event = {"url": outside, "targets": {
            "host_service_via_outside_addr": ["198.51.100.1", port],
            "host_service_via_gateway": ["10.233.0.1", port],
            "stratus_on_host_loopback": ["127.0.0.1", server_port],
        }}
        r = lam.invoke(FunctionName="net", Payload=json.dumps(event))
        out = json.loads(r["Payload"].read())
    finally:
        listener.close()
    assert out["outside"] == "hello from outside", out
    assert out["routes"] >= 2, out
    assert out["host_service_via_outside_addr"] != "connected", out
    assert out["host_service_via_gateway"] != "connected", out
    assert out["stratus_on_host_loopback"] != "connected", out


def test_network_can_be_turned_off(exec_server_factory, outside):
    server = exec_server_factory(extra_config="sandbox_network = false\n")
    lam = server.client("lambda")
    lam.create_function(FunctionName="net", Runtime="python3.11", Handler="app.handler", Role=ROLE,
                        Code={"ZipFile": make_zip({"app.py": PROBE})}, Timeout=20)
    lam.get_waiter("function_active_v2").wait(FunctionName="net")
    r = lam.invoke(FunctionName="net", Payload=json.dumps({"url": outside, "targets": {}}))
    out = json.loads(r["Payload"].read())
    assert out["outside"].startswith("error"), out
    assert out["routes"] == 0, out
