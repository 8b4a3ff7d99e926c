"""Metering: `stratus usage` (the real binary) and `GET /_stratus/usage` report what ran, and
`/metrics` is real Prometheus exposition whose counters match the invocations made.

Functions sleep known times and touch known amounts of memory; invocations are sequential, so
each function has exactly one cold start. Records are committed within about 1.1 s of an
invocation's end, so those made 2.5 s before a `kill -9` survive it."""

from __future__ import annotations

import json
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers import (STRATUS_BIN, clean_env, create_function, http_request, invoke, send,
                     sign_request, signed_call, wait_until)

SLEEPER = """
import time
KEEP = []
def handler(event, context):
    KEEP.clear()
    KEEP.append(bytearray(event["mb"] * 1024 * 1024))  # touched: zero-filled
    time.sleep(event["sleep"])
    return {"slept": event["sleep"]}
"""

FAILING = """
def handler(event, context):
    raise RuntimeError("metered failure")
"""

PRICE_REQUEST = 0.20 / 1e6
PRICE_GB_SECOND = 0.0000166667


def usage_cli(server, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = clean_env({"AWS_SHARED_CREDENTIALS_FILE": str(server.credentials_file)})
    return subprocess.run([str(STRATUS_BIN), "usage", "--endpoint-url", server.url, *args],
                          env=env, capture_output=True, text=True, timeout=60, check=check)


def usage_json(server, *args: str) -> dict:
    out = usage_cli(server, "--json", *args)
    return json.loads(out.stdout)


def by_function(report: dict) -> dict[str, dict]:
    return {f["function"]: f for f in report["functions"]}


def metrics(server, path: str = "/metrics") -> dict[str, dict[tuple, float]]:
    """`{sample name: {sorted label items: value}}`, parsed by the Prometheus client's parser."""
    resp = http_request("GET", server.url + path)
    assert resp.status == 200, resp.body
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(resp.body.decode()):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def sample(m, name: str, **labels) -> float:
    return m.get(name, {}).get(tuple(sorted(labels.items())), 0.0)


def stratus_call(server, url: str):
    """`GET url` signed with the root key for the `stratus` service."""
    creds = server.credentials
    return send(sign_request("GET", url, access_key=creds["aws_access_key_id"],
                             secret_key=creds["aws_secret_access_key"], service="stratus"))


def sleeper(lam, name: str, memory: int):
    create_function(lam, name, {"app.py": SLEEPER}, runtime="python3.11", handler="app.handler",
                    MemorySize=memory, Timeout=30)


def test_usage_reports_counts_durations_cold_starts_memory_and_price(exec_server):
    lam = exec_server.client("lambda")
    plan = {"short": (256, 0.2, 40, 4), "long": (512, 0.5, 100, 3)}  # memory, sleep, MB, calls
    for name, (memory, sleep, mb, calls) in plan.items():
        sleeper(lam, name, memory)
        for _ in range(calls):
            r = invoke(lam, name, {"sleep": sleep, "mb": mb})
            assert r.function_error is None, r.raw

    report = usage_json(exec_server)
    fns = by_function(report)
    assert set(fns) == {"short", "long"}, report
    for name, (memory, sleep, mb, calls) in plan.items():
        f = fns[name]
        assert f["invocations"] == calls, f
        assert (f["errors"], f["throttles"]) == (0, 0), f
        assert f["cold_starts"] == 1, f"sequential calls reuse one environment: {f}"
        sleep_ms = sleep * 1000
        # Above the sleep by the time to touch the memory at the function's CPU share.
        assert sleep_ms <= f["duration_p50_ms"] < sleep_ms + 1000, f
        assert f["duration_p50_ms"] <= f["duration_p99_ms"] < sleep_ms + 2000, f
        # Billed covers every duration, and the cold start's init on top.
        assert f["billed_ms"] >= calls * sleep_ms, f
        assert f["billed_ms"] >= f["duration_max_ms"] + (calls - 1) * sleep_ms, f
        assert mb <= f["max_memory_used_mb"] < memory, f
        gb_s = f["billed_ms"] / 1000 * memory / 1024
        assert f["gb_seconds"] == pytest.approx(gb_s, rel=1e-9), f
        cost = calls * PRICE_REQUEST + gb_s * PRICE_GB_SECOND
        assert f["estimated_cost_usd"] == pytest.approx(cost, rel=1e-9), f

    # Filters: one function; a period after everything.
    only = usage_json(exec_server, "--function", "long")
    assert [f["function"] for f in only["functions"]] == ["long"]
    assert usage_json(exec_server, "--since", "4102444800000")["functions"] == []
    assert len(usage_json(exec_server, "--since", "1h")["functions"]) == 2

    # The table names both functions.
    table = usage_cli(exec_server).stdout
    lines = table.splitlines()
    assert any(l.startswith("FUNCTION") for l in lines), table
    assert any(l.split()[:2] == ["short", "4"] for l in lines), table
    assert any(l.split()[:2] == ["long", "3"] for l in lines), table


def test_errors_and_throttles_are_counted(exec_server):
    lam = exec_server.client("lambda")
    create_function(lam, "failing", {"app.py": FAILING}, runtime="python3.11",
                    handler="app.handler")
    for _ in range(3):
        assert invoke(lam, "failing").function_error == "Unhandled"
    sleeper(lam, "closed", 128)
    lam.put_function_concurrency(FunctionName="closed", ReservedConcurrentExecutions=0)
    creds = exec_server.credentials
    for _ in range(2):
        # One attempt each (boto3 would retry a throttle, and each retry is a throttle too).
        r = signed_call("POST", exec_server.url + "/2015-03-31/functions/closed/invocations",
                        access_key=creds["aws_access_key_id"],
                        secret_key=creds["aws_secret_access_key"], body=b"{}")
        assert (r.status, r.error_type) == (429, "TooManyRequestsException"), r.body

    fns = by_function(usage_json(exec_server))
    assert (fns["failing"]["invocations"], fns["failing"]["errors"]) == (3, 3), fns
    assert fns["closed"]["throttles"] == 2, fns
    assert fns["closed"]["invocations"] == 0, fns
    assert fns["closed"]["estimated_cost_usd"] == 0, "throttles are not charged"

    def counted():
        m = metrics(exec_server)
        return (sample(m, "stratus_lambda_errors_total", function="failing", kind="error") == 3
                and sample(m, "stratus_lambda_throttles_total", function="closed") == 2) or None
    wait_until(counted, timeout=5, what="errors and throttles in /metrics")


def test_metrics_are_prometheus_exposition_matching_the_invocations(exec_server):
    lam = exec_server.client("lambda")
    sleeper(lam, "counted", 128)
    n = 5
    for _ in range(n):
        invoke(lam, "counted", {"sleep": 0.05, "mb": 1})

    def settled():
        m = metrics(exec_server)
        return m if sample(m, "stratus_lambda_invocations_total", function="counted") == n else None
    m = wait_until(settled, timeout=5, what=f"{n} invocations in /metrics")
    assert sample(m, "stratus_lambda_cold_starts_total", function="counted") == 1
    assert sample(m, "stratus_lambda_duration_seconds_count", function="counted") == n
    assert sample(m, "stratus_lambda_duration_seconds_sum", function="counted") >= n * 0.05
    assert sample(m, "stratus_lambda_duration_seconds_bucket", function="counted", le="+Inf") == n
    assert sample(m, "stratus_lambda_duration_seconds_bucket", function="counted",
                  le="0.032") == 0, "every invocation slept 50 ms"
    assert sample(m, "stratus_lambda_environments", state="live") == 1
    assert sample(m, "stratus_lambda_environments", state="idle") == 1
    assert sample(m, "stratus_lambda_async_queue_depth") == 0
    # The gateway counted the Invoke requests by service and operation.
    assert sample(m, "stratus_requests_total", service="lambda", operation="Invoke",
                  code="2xx") == n
    assert sample(m, "stratus_request_duration_seconds_count", service="lambda",
                  operation="Invoke") == n
    assert sample(m, "stratus_requests_total", service="lambda", operation="CreateFunction",
                  code="2xx") == 1
    assert sample(m, "stratus_metering_dropped_records_total") == 0
    # The same exposition under /_stratus/metrics.
    m2 = metrics(exec_server, "/_stratus/metrics")
    assert sample(m2, "stratus_lambda_invocations_total", function="counted") == n


def test_usage_endpoint_needs_the_root_key_and_the_cli_says_when_no_server_runs(server, tmp_path):
    url = server.url + "/_stratus/usage"
    unsigned = http_request("GET", url)
    assert unsigned.status == 403, unsigned.body
    ok = stratus_call(server, url + "?since=2020-01-01T00%3A00%3A00Z")
    assert ok.status == 200, ok.body
    assert ok.json()["functions"] == []
    bad = stratus_call(server, url + "?since=yesterday")
    assert (bad.status, bad.error_type) == (400, "InvalidParameterValueException"), bad.body
    # A signed request to /metrics goes to the service it is signed for, never to metrics.
    signed_metrics = stratus_call(server, server.url + "/metrics")
    assert signed_metrics.status == 404, signed_metrics.body

    server.kill9()
    gone = usage_cli(server, check=False)
    assert gone.returncode != 0
    assert "no Stratus server answers" in gone.stderr, gone.stderr


def test_records_survive_kill_9(exec_server):
    lam = exec_server.client("lambda")
    sleeper(lam, "durable", 128)
    n = 4
    for _ in range(n):
        invoke(lam, "durable", {"sleep": 0, "mb": 1})

    # The guarantee: committed within about 1.1 s of the invocation's end.
    def written():
        return sample(metrics(exec_server), "stratus_metering_written_records_total") >= n
    wait_until(written, timeout=2.5, what="usage records committed")
    exec_server.kill9()
    exec_server.start()
    f = by_function(usage_json(exec_server))["durable"]
    assert (f["invocations"], f["cold_starts"]) == (n, 1), f


def test_asynchronous_invocations_are_metered_when_they_run(exec_server):
    lam = exec_server.client("lambda")
    sleeper(lam, "queued", 128)
    n = 3
    for _ in range(n):
        r = lam.invoke(FunctionName="queued", InvocationType="Event",
                       Payload=json.dumps({"sleep": 0, "mb": 1}))
        assert r["StatusCode"] == 202

    def ran():
        f = by_function(usage_json(exec_server)).get("queued")
        return f if f and f["invocations"] == n else None
    f = wait_until(ran, timeout=30, interval=0.2, what=f"{n} asynchronous invocations metered")
    assert (f["errors"], f["throttles"]) == (0, 0), f
    assert f["cold_starts"] >= 1, f
