"""Asynchronous invocation: the durable queue, retries, destinations, event invoke configs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from helpers import ROLE, make_zip, wait_until

RECORDER = """
import json
def handler(event, context):
    print("RECORD " + json.dumps(event, sort_keys=True))
    return "ok"
"""

SLOW_RECORDER = """
import json, time
def handler(event, context):
    time.sleep(0.2)
    print("RECORD " + json.dumps(event, sort_keys=True))
    return "ok"
"""

WORKER = """
def handler(event, context):
    if event.get("fail"):
        raise ValueError("asked to fail")
    return {"doubled": event["n"] * 2}
"""


def create(lam, name, code, **kw):
    lam.create_function(FunctionName=name, Runtime="python3.11", Handler="app.handler", Role=ROLE,
                        Code={"ZipFile": make_zip({"app.py": code})}, Timeout=10, **kw)
    lam.get_waiter("function_active_v2").wait(FunctionName=name)


def records(server, function="recorder"):
    """Every record the recorder function printed, from its log files on disk."""
    group = server.data_dir / "logs" / f"%2Faws%2Flambda%2F{function}"
    out = []
    for stream in sorted(group.glob("*.jsonl")) if group.exists() else []:
        for line in stream.read_text().splitlines():
            msg = json.loads(line)["message"]
            if msg.startswith("RECORD "):
                out.append(json.loads(msg[len("RECORD "):]))
    return out


def records_in_run_order(server, function):
    """The records `function` printed, ordered by when they were written (one stream per
    environment, so the streams' names say nothing of the order between them)."""
    group = server.data_dir / "logs" / f"%2Faws%2Flambda%2F{function}"
    lines = []
    for stream in group.glob("*.jsonl") if group.exists() else []:
        for line in stream.read_text().splitlines():
            doc = json.loads(line)
            if doc["message"].startswith("RECORD "):
                lines.append((doc["timestamp"], json.loads(doc["message"][len("RECORD "):])))
    return [rec for _, rec in sorted(lines, key=lambda t: t[0])]


def send_to_a_single_slot(lam, n):
    """A function that takes 200 ms, with reserved concurrency 1, and `n` events sent to it."""
    create(lam, "slow", SLOW_RECORDER)
    lam.put_function_concurrency(FunctionName="slow", ReservedConcurrentExecutions=1)
    sent = [{"n": i} for i in range(n)]
    for p in sent:
        assert lam.invoke(FunctionName="slow", InvocationType="Event",
                          Payload=json.dumps(p))["StatusCode"] == 202
    return sent


@pytest.fixture
def async_server(exec_server_factory):
    return exec_server_factory(extra_config="async_retry_base = 1\n")


def test_event_invocation_is_accepted_and_runs(async_server):
    lam = async_server.client("lambda")
    create(lam, "recorder", RECORDER)
    r = lam.invoke(FunctionName="recorder", InvocationType="Event", Payload=json.dumps({"hello": 1}))
    assert r["StatusCode"] == 202
    assert r["ResponseMetadata"]["RequestId"]
    wait_until(lambda: {"hello": 1} in records(async_server), timeout=20, what="the event to run")


def test_success_destination_gets_the_invocation_record(async_server):
    lam = async_server.client("lambda")
    create(lam, "recorder", RECORDER)
    create(lam, "worker", WORKER)
    recorder_arn = lam.get_function(FunctionName="recorder")["Configuration"]["FunctionArn"]
    cfg = lam.put_function_event_invoke_config(
        FunctionName="worker", MaximumRetryAttempts=1,
        DestinationConfig={"OnSuccess": {"Destination": recorder_arn}})
    assert cfg["MaximumRetryAttempts"] == 1
    assert cfg["DestinationConfig"]["OnSuccess"]["Destination"] == recorder_arn
    assert cfg["FunctionArn"].endswith(":function:worker:$LATEST")
    r = lam.invoke(FunctionName="worker", InvocationType="Event", Payload=json.dumps({"n": 21}))
    request_id = r["ResponseMetadata"]["RequestId"]
    wait_until(lambda: records(async_server), timeout=20, what="the success record")
    rec = records(async_server)[0]
    assert rec["version"] == "1.0"
    assert rec["requestContext"]["requestId"] == request_id
    assert rec["requestContext"]["condition"] == "Success"
    assert rec["requestContext"]["approximateInvokeCount"] == 1
    assert rec["requestContext"]["functionArn"].endswith(":function:worker:$LATEST")
    assert rec["requestPayload"] == {"n": 21}
    assert rec["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}
    assert rec["responsePayload"] == {"doubled": 42}


def test_function_errors_are_retried_then_sent_to_the_failure_destination(async_server):
    lam = async_server.client("lambda")
    create(lam, "recorder", RECORDER)
    create(lam, "worker", WORKER)
    recorder_arn = lam.get_function(FunctionName="recorder")["Configuration"]["FunctionArn"]
    lam.put_function_event_invoke_config(
        FunctionName="worker", MaximumRetryAttempts=2,
        DestinationConfig={"OnFailure": {"Destination": recorder_arn}})
    lam.invoke(FunctionName="worker", InvocationType="Event", Payload=json.dumps({"fail": True}))
    wait_until(lambda: records(async_server), timeout=30, what="the failure record")
    rec = records(async_server)[0]
    assert rec["requestContext"]["condition"] == "RetriesExhausted"
    assert rec["requestContext"]["approximateInvokeCount"] == 3, "one attempt and two retries"
    assert rec["responseContext"]["functionError"] == "Unhandled"
    assert rec["responsePayload"]["errorType"] == "ValueError"
    # The worker ran exactly three times.
    group = async_server.data_dir / "logs" / "%2Faws%2Flambda%2Fworker"
    starts = sum(line.count("START RequestId") for s in group.glob("*.jsonl") for line in [s.read_text()])
    assert starts == 3


def test_event_invoke_config_crud(async_server):
    lam = async_server.client("lambda")
    create(lam, "worker", WORKER)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function_event_invoke_config(FunctionName="worker")
    lam.put_function_event_invoke_config(FunctionName="worker", MaximumEventAgeInSeconds=120)
    got = lam.get_function_event_invoke_config(FunctionName="worker")
    assert got["MaximumEventAgeInSeconds"] == 120 and "MaximumRetryAttempts" not in got
    lam.update_function_event_invoke_config(FunctionName="worker", MaximumRetryAttempts=0)
    got = lam.get_function_event_invoke_config(FunctionName="worker")
    assert (got["MaximumEventAgeInSeconds"], got["MaximumRetryAttempts"]) == (120, 0)
    assert len(lam.list_function_event_invoke_configs(FunctionName="worker")["FunctionEventInvokeConfigs"]) == 1
    with pytest.raises(lam.exceptions.ClientError) as e:
        lam.put_function_event_invoke_config(FunctionName="worker", MaximumRetryAttempts=3)
    assert e.value.response["Error"]["Code"] in ("ValidationException", "InvalidParameterValueException")
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.put_function_event_invoke_config(
            FunctionName="worker", DestinationConfig={"OnSuccess": {"Destination": "not-an-arn"}})
    lam.delete_function_event_invoke_config(FunctionName="worker")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function_event_invoke_config(FunctionName="worker")


def test_async_payload_limit_is_one_megabyte(async_server):
    lam = async_server.client("lambda")
    create(lam, "recorder", RECORDER)
    big = json.dumps({"x": "a" * (1024 * 1024)})
    with pytest.raises(lam.exceptions.RequestTooLargeException):
        lam.invoke(FunctionName="recorder", InvocationType="Event", Payload=big)


def test_queued_events_survive_kill_9(async_server):
    lam = async_server.client("lambda")
    create(lam, "recorder", RECORDER)
    # Reserved concurrency 0 throttles the function: its events wait in the queue.
    lam.put_function_concurrency(FunctionName="recorder", ReservedConcurrentExecutions=0)
    sent = [{"n": i} for i in range(5)]
    for p in sent:
        assert lam.invoke(FunctionName="recorder", InvocationType="Event",
                          Payload=json.dumps(p))["StatusCode"] == 202
    async_server.kill9()
    async_server.restart()
    lam = async_server.client("lambda")
    assert records(async_server) == []
    lam.delete_function_concurrency(FunctionName="recorder")
    wait_until(lambda: all(p in records(async_server) for p in sent), timeout=60,
               what="every acknowledged event to be delivered after the restart")


def test_dead_letter_target_gets_the_event_when_retries_run_out(async_server):
    lam = async_server.client("lambda")
    create(lam, "recorder", RECORDER)
    recorder_arn = lam.get_function(FunctionName="recorder")["Configuration"]["FunctionArn"]
    # SQS and SNS dead-letter targets arrive with those services; a function stands in.
    create(lam, "worker", WORKER, DeadLetterConfig={"TargetArn": recorder_arn})
    lam.put_function_event_invoke_config(FunctionName="worker", MaximumRetryAttempts=0)
    lam.invoke(FunctionName="worker", InvocationType="Event",
               Payload=json.dumps({"fail": True, "n": 7}))
    wait_until(lambda: records(async_server), timeout=30, what="the dead-lettered event")
    assert records(async_server) == [{"fail": True, "n": 7}], "a dead-letter target gets the event itself"


def test_an_event_that_cannot_run_is_given_up_when_its_age_runs_out(async_server):
    """Throttled events wait and are retried; once MaximumEventAgeInSeconds (60 at least) has
    passed, the event goes to the failure destination, never having run."""
    lam = async_server.client("lambda")
    create(lam, "recorder", RECORDER)
    create(lam, "worker", WORKER)
    recorder_arn = lam.get_function(FunctionName="recorder")["Configuration"]["FunctionArn"]
    lam.put_function_concurrency(FunctionName="worker", ReservedConcurrentExecutions=0)
    lam.put_function_event_invoke_config(
        FunctionName="worker", MaximumEventAgeInSeconds=60,
        DestinationConfig={"OnFailure": {"Destination": recorder_arn}})
    sent = time.monotonic()
    r = lam.invoke(FunctionName="worker", InvocationType="Event", Payload=json.dumps({"n": 1}))
    assert r["StatusCode"] == 202
    request_id = r["ResponseMetadata"]["RequestId"]
    wait_until(lambda: records(async_server), timeout=90, what="the EventAgeExceeded record")
    waited = time.monotonic() - sent
    assert waited >= 59, f"given up after {waited:.1f} s, before its age ran out"
    rec = records(async_server)[0]
    assert rec["requestContext"]["requestId"] == request_id
    assert rec["requestContext"]["condition"] == "EventAgeExceeded"
    assert rec["requestContext"]["approximateInvokeCount"] == 0
    assert rec["requestPayload"] == {"n": 1}
    assert "responsePayload" not in rec
    assert not (async_server.data_dir / "logs" / "%2Faws%2Flambda%2Fworker").exists(), "the worker ran"


def test_events_waiting_for_capacity_run_as_the_slot_frees_in_arrival_order(async_server):
    """Twenty events on one slot: each waits for the slot, without backing off or using a
    retry, and runs as soon as the one before it ends (backing off, this took many minutes)."""
    lam = async_server.client("lambda")
    sent = send_to_a_single_slot(lam, 20)
    wait_until(lambda: len(records(async_server, "slow")) >= len(sent), timeout=60,
               what="every event to run on the single slot")
    assert records_in_run_order(async_server, "slow") == sent, "in arrival order, each once"
    group = async_server.data_dir / "logs" / "%2Faws%2Flambda%2Fslow"
    starts = sum(s.read_text().count("START RequestId") for s in group.glob("*.jsonl"))
    assert starts == len(sent), "a wait for capacity is not an invocation"


def test_a_backlog_waiting_for_capacity_survives_kill_9(async_server):
    lam = async_server.client("lambda")
    sent = send_to_a_single_slot(lam, 20)
    wait_until(lambda: len(records(async_server, "slow")) >= 3, timeout=30,
               what="the first events to run")
    async_server.kill9()
    assert len(records(async_server, "slow")) < len(sent), "the backlog was gone before the kill"
    async_server.restart()
    # At least once: an event running at the kill may run again, none may be lost.
    wait_until(lambda: all(p in records(async_server, "slow") for p in sent), timeout=60,
               what="every acknowledged event to run after the restart")
