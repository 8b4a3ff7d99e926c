"""Scaling from zero, reuse, concurrency limits and throttling, memory admission."""

from __future__ import annotations

import json
import threading

import pytest

from helpers import ROLE, make_zip, wait_until

SLEEPY = """
import os, time, json
TOKEN = os.urandom(8).hex()
def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {"env": TOKEN}
"""


def create(lam, name, memory=128, **kw):
    lam.create_function(FunctionName=name, Runtime="python3.11", Handler="app.handler", Role=ROLE,
                        Code={"ZipFile": make_zip({"app.py": SLEEPY})}, MemorySize=memory,
                        Timeout=30, **kw)
    lam.get_waiter("function_active_v2").wait(FunctionName=name)


def invoke(lam, name, sleep=0.0):
    r = lam.invoke(FunctionName=name, Payload=json.dumps({"sleep": sleep}))
    return json.loads(r["Payload"].read())


def parallel(fn, n):
    """Runs fn(i) in n threads at once; returns results or exceptions, in order."""
    out: list = [None] * n
    barrier = threading.Barrier(n)

    def run(i):
        barrier.wait()
        try:
            out[i] = fn(i)
        except Exception as e:  # noqa: BLE001 - the test inspects it
            out[i] = e
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return out


def health(server):
    import urllib.request
    with urllib.request.urlopen(server.url + "/_stratus/health", timeout=5) as r:
        return json.loads(r.read())


def test_scale_from_zero_to_n_and_reuse(exec_server):
    lam = exec_server.client("lambda")
    assert health(exec_server)["services"]["lambda"]["environments"] == 0, "nothing runs before the first invocation"
    create(lam, "burst")
    assert health(exec_server)["services"]["lambda"]["environments"] == 0
    n = 6
    results = parallel(lambda i: invoke(lam, "burst", sleep=1.0), n)
    envs = {r["env"] for r in results}
    assert len(envs) == n, f"each concurrent invocation gets its own environment: {results}"
    assert health(exec_server)["services"]["lambda"]["environments"] == n
    # Sequential calls reuse the idle environments rather than making new ones.
    again = {invoke(lam, "burst")["env"] for _ in range(n)}
    assert again <= envs
    assert health(exec_server)["services"]["lambda"]["environments"] == n


def test_reserved_concurrency_throttles_with_the_right_reason(exec_server):
    lam = exec_server.client("lambda")
    create(lam, "limited")
    assert lam.put_function_concurrency(FunctionName="limited", ReservedConcurrentExecutions=2)[
        "ReservedConcurrentExecutions"] == 2
    assert lam.get_function_concurrency(FunctionName="limited")["ReservedConcurrentExecutions"] == 2
    assert lam.get_function(FunctionName="limited")["Concurrency"] == {"ReservedConcurrentExecutions": 2}
    settings = lam.get_account_settings()["AccountLimit"]
    assert settings["UnreservedConcurrentExecutions"] == settings["ConcurrentExecutions"] - 2

    results = parallel(lambda i: invoke(lam, "limited", sleep=2.0), 5)
    throttled = [r for r in results if isinstance(r, Exception)]
    assert len(throttled) == 3, results
    for e in throttled:
        # By code, not class: botocore builds a client's exception classes lazily, and
        # threads racing to the first one can get two classes of the same name.
        assert e.response["Error"]["Code"] == "TooManyRequestsException", e
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 429
        assert e.response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"

    # 0 disables the function; deleting the reservation enables it again.
    lam.put_function_concurrency(FunctionName="limited", ReservedConcurrentExecutions=0)
    with pytest.raises(lam.exceptions.TooManyRequestsException):
        invoke(lam, "limited")
    lam.delete_function_concurrency(FunctionName="limited")
    assert "ReservedConcurrentExecutions" not in lam.get_function_concurrency(FunctionName="limited")
    assert "env" in invoke(lam, "limited")


def test_reservations_keep_100_unreserved(exec_server_factory):
    server = exec_server_factory(extra_config="concurrent_executions = 150\n")
    lam = server.client("lambda")
    create(lam, "big")
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as e:
        lam.put_function_concurrency(FunctionName="big", ReservedConcurrentExecutions=51)
    assert "below its minimum value of [100]" in str(e.value)
    lam.put_function_concurrency(FunctionName="big", ReservedConcurrentExecutions=50)
    assert lam.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"] == 100
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.put_function_concurrency(FunctionName="missing", ReservedConcurrentExecutions=1)


def test_account_limit_throttles_unreserved_functions(exec_server_factory):
    server = exec_server_factory(extra_config="concurrent_executions = 2\n")
    lam = server.client("lambda")
    create(lam, "a")
    results = parallel(lambda i: invoke(lam, "a", sleep=2.0), 4)
    throttled = [r for r in results if isinstance(r, Exception)]
    assert len(throttled) == 2, results
    for e in throttled:
        assert e.response["Reason"] == "ConcurrentInvocationLimitExceeded"


def test_keep_alive_reaps_idle_environments(exec_server_factory):
    server = exec_server_factory(keep_alive=1)
    lam = server.client("lambda")
    create(lam, "short")
    first = invoke(lam, "short")["env"]
    assert health(server)["services"]["lambda"]["environments"] == 1
    wait_until(lambda: health(server)["services"]["lambda"]["environments"] == 0, timeout=15,
               what="the idle environment to be reaped")
    assert invoke(lam, "short")["env"] != first, "a reaped environment is not reused"


def test_memory_budget_evicts_idle_environments_then_throttles(exec_server_factory):
    server = exec_server_factory(extra_config="memory_budget_mb = 1024\n")
    lam = server.client("lambda")
    create(lam, "m1", memory=512)
    create(lam, "m2", memory=512)
    create(lam, "m3", memory=512)
    invoke(lam, "m1")
    m2_env = invoke(lam, "m2")["env"]
    assert health(server)["services"]["lambda"]["environments"] == 2
    # The budget is full: m3's environment needs m1's (least recently used) to go.
    invoke(lam, "m3")
    wait_until(lambda: health(server)["services"]["lambda"]["environments"] == 2, timeout=10,
               what="the evicted environment to exit")
    assert invoke(lam, "m2")["env"] == m2_env, "the more recently used environment survives"
    assert health(server)["services"]["lambda"]["memory_claimed_mb"] == 1024
    # With both environments busy, a third function cannot get memory and is throttled.
    busy = [threading.Thread(target=invoke, args=(lam, name, 3.0)) for name in ("m2", "m3")]
    for t in busy:
        t.start()
    wait_until(lambda: health(server)["services"]["lambda"]["invocations_in_flight"] == 2, timeout=10,
               what="both environments to be busy")
    with pytest.raises(lam.exceptions.TooManyRequestsException) as e:
        invoke(lam, "m1")
    assert e.value.response["Reason"] == "ConcurrentInvocationLimitExceeded"
    for t in busy:
        t.join(timeout=30)
