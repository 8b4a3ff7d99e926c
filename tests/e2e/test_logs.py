"""CloudWatch Logs: the API with boto3, the AWS CLI v2 unmodified (`aws logs tail --follow`,
`aws logs filter-log-events` with each filter pattern kind), functions' logs served through
it, and a flood of output contained by the group's cap."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time

import botocore.exceptions
import pytest

from helpers import clean_env, create_function, invoke, wait_until

GROUP = "/stratus/e2e"
PY = "python3.11"


def now_ms() -> int:
    return int(time.time() * 1000)


def cli_v2() -> str:
    """Debian's AWS CLI v2 (`scripts/test` installs it): v1, in the venv, has no `logs tail`."""
    path = "/usr/bin/aws"
    if not shutil.which(path):
        pytest.fail("the AWS CLI v2 (Debian's awscli) is not installed; scripts/test installs it")
    return path


def cli_env(server, tmp_path) -> dict[str, str]:
    return clean_env({
        "AWS_SHARED_CREDENTIALS_FILE": str(server.credentials_file),
        "AWS_CONFIG_FILE": str(tmp_path / "no-such-aws-config"),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_PAGER": "",
        "AWS_MAX_ATTEMPTS": "1",
    })


def cli(server, tmp_path, *args) -> str:
    proc = subprocess.run([cli_v2(), "--endpoint-url", server.url, "--output", "json", *args],
                          env=cli_env(server, tmp_path), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{args}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    return proc.stdout


def test_groups_streams_and_events_with_boto3(server):
    logs = server.client("logs")
    logs.create_log_group(logGroupName=GROUP, tags={"team": "e2e"})
    with pytest.raises(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_group(logGroupName=GROUP)
    for i in range(3):
        logs.create_log_group(logGroupName=f"/stratus/page/{i}")
    page = logs.describe_log_groups(logGroupNamePrefix="/stratus/page/", limit=2)
    assert [g["logGroupName"] for g in page["logGroups"]] == ["/stratus/page/0", "/stratus/page/1"]
    rest = logs.describe_log_groups(logGroupNamePrefix="/stratus/page/",
                                    nextToken=page["nextToken"])
    assert [g["logGroupName"] for g in rest["logGroups"]] == ["/stratus/page/2"]
    assert "nextToken" not in rest
    group = logs.describe_log_groups(logGroupNamePrefix=GROUP)["logGroups"][0]
    assert group["arn"] == f"arn:aws:logs:us-east-1:000000000000:log-group:{GROUP}:*"

    logs.create_log_stream(logGroupName=GROUP, logStreamName="s1")
    t = now_ms()
    logs.put_log_events(logGroupName=GROUP, logStreamName="s1",
                        logEvents=[{"timestamp": t + i, "message": f"event {i}"} for i in range(25)])
    # Forward from the head, 10 at a time, until the token stops moving (what the SDKs do).
    seen, token = [], None
    while True:
        kw = {"nextToken": token} if token else {"startFromHead": True}
        resp = logs.get_log_events(logGroupName=GROUP, logStreamName="s1", limit=10, **kw)
        seen += [e["message"] for e in resp["events"]]
        if resp["nextForwardToken"] == token:
            break
        token = resp["nextForwardToken"]
    assert seen == [f"event {i}" for i in range(25)]
    # Backward from the tail.
    last = logs.get_log_events(logGroupName=GROUP, logStreamName="s1", limit=5)
    assert [e["message"] for e in last["events"]] == [f"event {i}" for i in range(20, 25)]
    before = logs.get_log_events(logGroupName=GROUP, logStreamName="s1", limit=5,
                                 nextToken=last["nextBackwardToken"])
    assert [e["message"] for e in before["events"]] == [f"event {i}" for i in range(15, 20)]

    # Events out of order are refused, and nothing of the batch is stored.
    with pytest.raises(logs.exceptions.InvalidParameterException):
        logs.put_log_events(logGroupName=GROUP, logStreamName="s1",
                            logEvents=[{"timestamp": t + 100, "message": "b"},
                                       {"timestamp": t + 50, "message": "a"}])
    # Too old for the group: rejected, not stored.
    resp = logs.put_log_events(logGroupName=GROUP, logStreamName="s1",
                               logEvents=[{"timestamp": t - 15 * 86_400_000, "message": "old"},
                                          {"timestamp": t + 30, "message": "fresh"}])
    assert resp["rejectedLogEventsInfo"] == {"tooOldLogEventEndIndex": 1}
    messages = [e["message"] for e in logs.get_log_events(
        logGroupName=GROUP, logStreamName="s1", startFromHead=True)["events"]]
    assert "old" not in messages and "fresh" in messages and "a" not in messages

    with pytest.raises(logs.exceptions.InvalidParameterException):
        logs.put_retention_policy(logGroupName=GROUP, retentionInDays=2)
    logs.put_retention_policy(logGroupName=GROUP, retentionInDays=7)
    group = logs.describe_log_groups(logGroupNamePrefix=GROUP)["logGroups"][0]
    assert group["retentionInDays"] == 7

    assert logs.list_tags_log_group(logGroupName=GROUP)["tags"] == {"team": "e2e"}
    logs.tag_resource(resourceArn=group["logGroupArn"], tags={"stage": "dev"})
    assert logs.list_tags_for_resource(resourceArn=group["logGroupArn"])["tags"] == {
        "team": "e2e", "stage": "dev"}

    with pytest.raises(logs.exceptions.ResourceNotFoundException):
        logs.get_log_events(logGroupName=GROUP, logStreamName="nope")
    logs.delete_log_group(logGroupName=GROUP)
    with pytest.raises(logs.exceptions.ResourceNotFoundException):
        logs.describe_log_streams(logGroupName=GROUP)


def test_logs_survive_a_restart(server):
    logs = server.client("logs")
    logs.create_log_group(logGroupName=GROUP)
    logs.create_log_stream(logGroupName=GROUP, logStreamName="kept")
    logs.put_log_events(logGroupName=GROUP, logStreamName="kept",
                        logEvents=[{"timestamp": now_ms(), "message": "acknowledged"}])
    logs.put_retention_policy(logGroupName=GROUP, retentionInDays=30)
    server.kill9()
    server.start()
    logs = server.client("logs")
    assert logs.describe_log_groups(logGroupNamePrefix=GROUP)["logGroups"][0]["retentionInDays"] == 30
    events = logs.get_log_events(logGroupName=GROUP, logStreamName="kept", startFromHead=True)
    assert [e["message"] for e in events["events"]] == ["acknowledged"]


FILTER_CASES = [
    # (pattern, messages expected to match)
    ("ERROR", ["ERROR disk full", '{"level": "ERROR", "latency": 250}']),
    ('"disk full"', ["ERROR disk full"]),
    ("?timeout ?refused", ["WARN timeout talking to db", "INFO connection refused by peer"]),
    ("ERROR -disk", ['{"level": "ERROR", "latency": 250}']),
    ('{ $.level = "ERROR" }', ['{"level": "ERROR", "latency": 250}']),
    ("{ $.latency > 100 }", ['{"level": "ERROR", "latency": 250}']),
    ("[ip, user, status = 404, size]", ["10.0.0.1 alice 404 512"]),
    ("[ip, user, status, size > 1000]", ["10.0.0.2 bob 200 2048"]),
]


def test_filter_log_events_with_each_pattern_kind_through_the_cli(server, tmp_path):
    logs = server.client("logs")
    logs.create_log_group(logGroupName=GROUP)
    messages = ["ERROR disk full", "WARN timeout talking to db", "INFO connection refused by peer",
                '{"level": "ERROR", "latency": 250}', '{"level": "INFO", "latency": 20}',
                "10.0.0.1 alice 404 512", "10.0.0.2 bob 200 2048"]
    t = now_ms()
    # Two streams, interleaved in time: FilterLogEvents merges them by timestamp.
    for name, parity in (("a", 0), ("b", 1)):
        logs.create_log_stream(logGroupName=GROUP, logStreamName=name)
        logs.put_log_events(logGroupName=GROUP, logStreamName=name,
                            logEvents=[{"timestamp": t + i, "message": m}
                                       for i, m in enumerate(messages) if i % 2 == parity])
    everything = json.loads(cli(server, tmp_path, "logs", "filter-log-events",
                                "--log-group-name", GROUP))
    assert [e["message"] for e in everything["events"]] == messages
    for pattern, expected in FILTER_CASES:
        out = json.loads(cli(server, tmp_path, "logs", "filter-log-events",
                             "--log-group-name", GROUP, "--filter-pattern", pattern))
        assert [e["message"] for e in out["events"]] == expected, pattern
    # A pattern that does not parse is the caller's error.
    proc = subprocess.run([cli_v2(), "--endpoint-url", server.url, "logs", "filter-log-events",
                           "--log-group-name", GROUP, "--filter-pattern", "{ $.level = "],
                          env=cli_env(server, tmp_path), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode != 0 and "InvalidParameterException" in proc.stderr, proc.stderr


def test_aws_logs_tail_follows_a_functions_output_live(exec_server, exec_lam, tmp_path):
    create_function(exec_lam, "tailed", {"index.py": (
        "def handler(event, context):\n"
        "    print(event['say'])\n"
        "    return 'ok'\n")}, runtime=PY, handler="index.handler")
    invoke(exec_lam, "tailed", {"say": "before-follow"})
    tail = subprocess.Popen(
        [cli_v2(), "--endpoint-url", exec_server.url, "logs", "tail", "/aws/lambda/tailed",
         "--follow", "--since", "10m", "--format", "short"],
        env=cli_env(exec_server, tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(tail.stdout.readline, "")),
                              daemon=True)
    reader.start()
    try:
        wait_until(lambda: any("before-follow" in line for line in lines), timeout=60,
                   interval=0.2, what="aws logs tail shows what ran before it started")
        invoke(exec_lam, "tailed", {"say": "while-following"})
        wait_until(lambda: any("while-following" in line for line in lines), timeout=60,
                   interval=0.2, what="aws logs tail --follow shows a new invocation's output")
        assert any(line.split(" ", 1)[-1].startswith("REPORT RequestId") for line in lines), lines
    finally:
        tail.kill()
        tail.wait(timeout=10)


def test_a_flood_of_output_is_capped_and_bystanders_keep_answering(exec_server_factory):
    server = exec_server_factory(extra_config="log_group_max_mb = 4\n")
    lam = server.client()
    create_function(lam, "flood", {"index.py": (
        "import sys\n"
        "def handler(event, context):\n"
        "    line = 'x' * 1023 + '\\n'\n"
        "    for _ in range(event['mb'] * 1024):\n"
        "        sys.stdout.write(line)\n"
        "    sys.stdout.flush()\n"
        "    print('flood-done')\n"
        "    return 'flooded'\n")}, runtime=PY, handler="index.handler", Timeout=120,
        MemorySize=256)
    create_function(lam, "bystander", {"index.py": (
        "def handler(event, context):\n"
        "    return event['n'] * 2\n")}, runtime=PY, handler="index.handler")
    done = {}
    flood = threading.Thread(target=lambda: done.update(inv=invoke(lam, "flood", {"mb": 64})))
    flood.start()
    n = 0
    while flood.is_alive():  # the bystander answers correctly throughout
        n += 1
        assert invoke(lam, "bystander", {"n": n}).payload == 2 * n
    flood.join()
    assert done["inv"].payload == "flooded", done["inv"].raw
    logs = server.client("logs")

    def group_bytes():
        return logs.describe_log_groups(logGroupNamePrefix="/aws/lambda/flood")["logGroups"][0][
            "storedBytes"]

    # 64 MB printed into a 4 MB cap: the group holds at most the cap, and the newest lines.
    assert group_bytes() <= 4 * 1024 * 1024
    newest = logs.filter_log_events(logGroupName="/aws/lambda/flood",
                                    filterPattern='"flood-done"')["events"]
    assert len(newest) == 1
    try:
        logs.get_log_events(logGroupName="/aws/lambda/nope", logStreamName="x")
    except botocore.exceptions.ClientError as e:
        assert e.response["Error"]["Code"] == "ResourceNotFoundException"
