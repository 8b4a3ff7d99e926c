"""Provisioned concurrency: environments initialised ahead, no cold start on the first call."""

from __future__ import annotations

import base64
import json
import os
import signal
import urllib.request
from pathlib import Path

import pytest

from conftest import cgroup_dirs
from helpers import ROLE, make_zip, wait_until

CODE = """
import os
def handler(event, context):
    return {"init": os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"], "version": context.function_version}
"""


def health(server):
    with urllib.request.urlopen(server.url + "/_stratus/health", timeout=5) as r:
        return json.loads(r.read())


def test_provisioned_environments_are_ready_before_the_first_call(exec_server):
    lam = exec_server.client("lambda")
    lam.create_function(FunctionName="pc", Runtime="python3.11", Handler="app.handler", Role=ROLE,
                        Code={"ZipFile": make_zip({"app.py": CODE})}, Publish=True)
    lam.get_waiter("function_active_v2").wait(FunctionName="pc")
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.put_provisioned_concurrency_config(FunctionName="pc", Qualifier="$LATEST",
                                               ProvisionedConcurrentExecutions=1)
    with pytest.raises(lam.exceptions.ProvisionedConcurrencyConfigNotFoundException):
        lam.get_provisioned_concurrency_config(FunctionName="pc", Qualifier="1")

    put = lam.put_provisioned_concurrency_config(FunctionName="pc", Qualifier="1",
                                                 ProvisionedConcurrentExecutions=2)
    assert put["RequestedProvisionedConcurrentExecutions"] == 2
    assert put["Status"] in ("IN_PROGRESS", "READY")
    wait_until(lambda: lam.get_provisioned_concurrency_config(FunctionName="pc", Qualifier="1")[
        "Status"] == "READY", timeout=30, what="provisioned concurrency to be READY")
    got = lam.get_provisioned_concurrency_config(FunctionName="pc", Qualifier="1")
    assert got["AllocatedProvisionedConcurrentExecutions"] == 2
    assert health(exec_server)["services"]["lambda"]["environments"] == 2, "initialised ahead, before any invocation"

    listed = lam.list_provisioned_concurrency_configs(FunctionName="pc")["ProvisionedConcurrencyConfigs"]
    assert [c["FunctionArn"].rsplit(":", 1)[1] for c in listed] == ["1"]

    r = lam.invoke(FunctionName="pc", Qualifier="1", LogType="Tail", Payload=b"{}")
    body = json.loads(r["Payload"].read())
    assert body == {"init": "provisioned-concurrency", "version": "1"}
    assert r["ExecutedVersion"] == "1"
    log = base64.b64decode(r["LogResult"]).decode()
    assert "REPORT RequestId" in log and "Init Duration" not in log, log
    assert health(exec_server)["services"]["lambda"]["environments"] == 2, "the call used a provisioned environment"

    # Removing the configuration releases the environments to the ordinary pool.
    lam.delete_provisioned_concurrency_config(FunctionName="pc", Qualifier="1")
    with pytest.raises(lam.exceptions.ProvisionedConcurrencyConfigNotFoundException):
        lam.get_provisioned_concurrency_config(FunctionName="pc", Qualifier="1")


def test_provisioned_environments_are_replaced_when_they_die(exec_server):
    lam = exec_server.client("lambda")
    lam.create_function(FunctionName="pc2", Runtime="python3.11", Handler="app.handler", Role=ROLE,
                        Code={"ZipFile": make_zip({"app.py": CODE})}, Publish=True)
    lam.get_waiter("function_active_v2").wait(FunctionName="pc2")
    lam.put_provisioned_concurrency_config(FunctionName="pc2", Qualifier="1",
                                           ProvisionedConcurrentExecutions=1)
    wait_until(lambda: lam.get_provisioned_concurrency_config(FunctionName="pc2", Qualifier="1")[
        "Status"] == "READY", timeout=30, what="READY")
    # Kill the environment's processes through its cgroup; the reconciler replaces it.
    memory = [d for d in cgroup_dirs(exec_server.cgroup_parent) if "memory" in str(d) or "unified" in str(d)]
    envs = [p for d in memory for p in d.iterdir() if p.is_dir() and not p.name.startswith("pool-")]
    assert len(envs) == 1, envs
    for pid in (envs[0] / "cgroup.procs").read_text().split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass  # gone with its namespace's init
    # Idle, it is frozen: on cgroup v1 a frozen process dies of its SIGKILL once thawed.
    v1_freezer = Path("/sys/fs/cgroup/freezer") / exec_server.cgroup_parent / envs[0].name
    if (v1_freezer / "freezer.state").exists():
        (v1_freezer / "freezer.state").write_text("THAWED")
    wait_until(lambda: not envs[0].exists(), timeout=10, what="the killed environment's cgroup to go")
    wait_until(lambda: health(exec_server)["services"]["lambda"]["environments"] == 1
               and lam.get_provisioned_concurrency_config(FunctionName="pc2", Qualifier="1")[
                   "Status"] == "READY", timeout=30, what="a replacement environment")
    r = lam.invoke(FunctionName="pc2", Qualifier="1", LogType="Tail", Payload=b"{}")
    assert "Init Duration" not in base64.b64decode(r["LogResult"]).decode()


def test_provisioned_concurrency_on_an_alias(exec_server):
    lam = exec_server.client("lambda")
    lam.create_function(FunctionName="pca", Runtime="python3.11", Handler="app.handler", Role=ROLE,
                        Code={"ZipFile": make_zip({"app.py": CODE})}, Publish=True)
    lam.get_waiter("function_active_v2").wait(FunctionName="pca")
    lam.create_alias(FunctionName="pca", Name="live", FunctionVersion="1")
    lam.put_provisioned_concurrency_config(FunctionName="pca", Qualifier="live",
                                           ProvisionedConcurrentExecutions=1)
    wait_until(lambda: lam.get_provisioned_concurrency_config(FunctionName="pca", Qualifier="live")[
        "Status"] == "READY", timeout=30, what="READY")
    r = lam.invoke(FunctionName="pca", Qualifier="live", LogType="Tail", Payload=b"{}")
    assert json.loads(r["Payload"].read()) == {"init": "provisioned-concurrency", "version": "1"}
    assert "Init Duration" not in base64.b64decode(r["LogResult"]).decode()
    listed = lam.list_provisioned_concurrency_configs(FunctionName="pca")["ProvisionedConcurrencyConfigs"]
    assert listed[0]["FunctionArn"].endswith(":function:pca:live")
