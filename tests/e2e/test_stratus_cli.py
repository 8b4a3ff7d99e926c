"""The `stratus` CLI for people (`stratus invoke`, `stratus logs`), run as the real binary
against a real server: what it prints where, its exit status, and how it finds the server
and the credentials."""

from __future__ import annotations

import json
import os
import pty
import re
import socket
import subprocess
import threading

from helpers import STRATUS_BIN, clean_env, create_function, invoke, wait_until

PY = "python3.11"
# `2025-01-31T12:00:00.123Z 0123abcd message`
EVENT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z [0-9a-f]{8} (.*)$")

HANDLER = (
    "def handler(event, context):\n"
    "    print('said ' + str(event.get('say')))\n"
    "    if event.get('fail'):\n"
    "        raise ValueError('asked to fail: ' + event['fail'])\n"
    "    return {'zeta': event.get('say'), 'alpha': [1, 2.50]}\n"
)


def env_for(server, tmp_path, **extra) -> dict[str, str]:
    """How a person would point the CLI at `server`: the endpoint and its credentials file
    in AWS variables, and a home without AWS files of its own."""
    return {"AWS_ENDPOINT_URL": server.url,
            "AWS_SHARED_CREDENTIALS_FILE": str(server.credentials_file),
            "HOME": str(tmp_path), **extra}


def stratus(*args, env: dict[str, str], stdin: str | None = None, timeout: float = 120):
    return subprocess.run([str(STRATUS_BIN), *args], env=clean_env(env), input=stdin,
                          capture_output=True, text=True, timeout=timeout)


def with_function(server, name="clifn"):
    create_function(server.client("lambda"), name, {"index.py": HANDLER}, runtime=PY,
                    handler="index.handler")
    return name


def event_messages(stdout: str) -> list[str]:
    out = []
    for line in stdout.splitlines():
        m = EVENT_LINE.match(line)
        assert m, f"not an event line: {line!r}"
        out.append(m.group(1))
    return out


def test_invoke_prints_the_result_on_stdout_and_the_report_on_stderr(exec_server, tmp_path):
    fn = with_function(exec_server)
    env = env_for(exec_server, tmp_path)
    proc = stratus("invoke", fn, '{"say": "hi"}', env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"zeta": "hi", "alpha": [1, 2.5]}
    # Pretty, in the function's own member order, numbers as it wrote them.
    assert proc.stdout == '{\n  "zeta": "hi",\n  "alpha": [\n    1,\n    2.5\n  ]\n}\n'
    assert re.search(r"^REPORT RequestId: \S+\tDuration: ", proc.stderr, re.M), proc.stderr
    assert "said hi" not in proc.stdout

    # The event from standard input, or from a file.
    proc = stratus("invoke", fn, "-", env=env, stdin='{"say": "from stdin"}')
    assert proc.returncode == 0 and json.loads(proc.stdout)["zeta"] == "from stdin", proc.stderr
    event = tmp_path / "event.json"
    event.write_text('{"say": "from a file"}')
    proc = stratus("invoke", fn, "--payload-file", str(event), env=env)
    assert proc.returncode == 0 and json.loads(proc.stdout)["zeta"] == "from a file", proc.stderr


def test_a_failing_function_exits_non_zero_with_its_error(exec_server, tmp_path):
    fn = with_function(exec_server)
    proc = stratus("invoke", fn, '{"fail": "on purpose"}', env=env_for(exec_server, tmp_path))
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    assert f"error: {fn} failed (Unhandled): ValueError: asked to fail: on purpose" \
        in proc.stderr, proc.stderr
    assert "REPORT RequestId:" in proc.stderr


def test_an_unknown_function_is_refused_with_awss_error(server, tmp_path):
    proc = stratus("invoke", "no-such-fn", env=env_for(server, tmp_path))
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert "ResourceNotFoundException: Function not found" in proc.stderr, proc.stderr
    assert "no-such-fn" in proc.stderr


def test_async_invoke_queues_and_the_output_reaches_the_logs(exec_server, tmp_path):
    fn = with_function(exec_server)
    env = env_for(exec_server, tmp_path)
    proc = stratus("invoke", fn, "--async", '{"say": "queued-hello"}', env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and "runs asynchronously" in proc.stderr, proc.stderr

    def logged():
        out = stratus("logs", fn, env=env, timeout=30)
        assert out.returncode == 0, out.stderr
        return "said queued-hello" in event_messages(out.stdout)
    wait_until(logged, timeout=60, interval=0.2, what="the async invocation's output in the logs")


def test_logs_show_the_invocations_output(exec_server, tmp_path):
    fn = with_function(exec_server)
    env = env_for(exec_server, tmp_path)
    lam = exec_server.client("lambda")

    proc = stratus("logs", fn, env=env)
    assert proc.returncode == 0 and proc.stdout == "", proc.stderr
    assert f"no logs yet for function {fn}" in proc.stderr
    proc = stratus("logs", "no-such-fn", env=env)
    assert proc.returncode == 2 and "ResourceNotFoundException" in proc.stderr, proc.stderr

    invoke(lam, fn, {"say": "first"})
    invoke(lam, fn, {"say": "second"})

    def both():
        out = stratus("logs", fn, env=env)
        assert out.returncode == 0, out.stderr
        msgs = event_messages(out.stdout)
        return msgs if {"said first", "said second"} <= set(msgs) else None
    msgs = wait_until(both, timeout=60, interval=0.2, what="both invocations in `stratus logs`")
    assert msgs.index("said first") < msgs.index("said second")
    assert any(m.startswith("START RequestId:") for m in msgs)
    assert any(m.startswith("REPORT RequestId:") for m in msgs)

    proc = stratus("logs", fn, "--filter", "said", env=env)
    assert proc.returncode == 0, proc.stderr
    assert event_messages(proc.stdout) == ["said first", "said second"]
    proc = stratus("logs", fn, "--since", "1h", "--filter", "second", env=env)
    assert event_messages(proc.stdout) == ["said second"]
    proc = stratus("logs", fn, "--since", "2999-01-01T00:00:00Z", env=env)
    assert proc.returncode == 0 and proc.stdout == "", proc.stderr
    proc = stratus("logs", fn, "--since", "yesterday", env=env)
    assert proc.returncode == 2 and "--since" in proc.stderr, proc.stderr


def test_logs_follow_shows_a_new_invocation_live(exec_server, tmp_path):
    fn = with_function(exec_server)
    lam = exec_server.client("lambda")
    invoke(lam, fn, {"say": "before-follow"})
    follow = subprocess.Popen([str(STRATUS_BIN), "logs", fn, "--follow"],
                              env=clean_env(env_for(exec_server, tmp_path)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(follow.stdout.readline, "")),
                              daemon=True)
    reader.start()
    try:
        wait_until(lambda: any(line.endswith(" said before-follow\n") for line in lines),
                   timeout=60, interval=0.2, what="`logs --follow` prints what ran before it")
        invoke(lam, fn, {"say": "while-following"})
        wait_until(lambda: any(line.endswith(" said while-following\n") for line in lines),
                   timeout=60, interval=0.2, what="`logs --follow` prints a new invocation")
        assert follow.poll() is None, "--follow exited on its own"
    finally:
        follow.kill()
        follow.wait(timeout=10)
    reader.join(timeout=10)
    # Each event once, although the polls overlap.
    assert sum(line.endswith(" said before-follow\n") for line in lines) == 1, lines
    assert sum(line.endswith(" said while-following\n") for line in lines) == 1, lines


def test_no_server_running_is_said_plainly(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Nothing listens on `port` now. With credentials and without: the missing server is
    # what is reported either way.
    url = f"http://127.0.0.1:{port}"
    for env in ({"AWS_ACCESS_KEY_ID": "AKIAX", "AWS_SECRET_ACCESS_KEY": "x"},
                {"HOME": str(tmp_path), "STRATUS_DATA_DIR": str(tmp_path / "none")}):
        for cmd in (["invoke", "f"], ["logs", "f"]):
            proc = stratus(*cmd, "--endpoint-url", url, env=env, timeout=10)
            assert proc.returncode == 2, (cmd, proc.stderr)
            assert (f"no Stratus server answers at {url}: connection refused "
                    "(start one with `stratus server`)") in proc.stderr, (cmd, proc.stderr)


def test_credentials_come_from_the_servers_data_dir_without_aws_variables(server_factory,
                                                                          tmp_path):
    # A server on its default data directory under XDG_DATA_HOME: the CLI, with no AWS
    # variables, no flags but the endpoint and an empty home, finds the key pair there.
    xdg = tmp_path / "xdg"
    server = server_factory(data_dir=xdg / "stratus")
    home = {"HOME": str(tmp_path / "home")}
    refused = "ResourceNotFoundException: Function not found"
    for env, args in (({**home, "XDG_DATA_HOME": str(xdg)}, []),
                      ({**home, "STRATUS_DATA_DIR": str(server.data_dir)}, []),
                      (home, ["--data-dir", str(server.data_dir)])):
        proc = stratus("invoke", "absent", "--endpoint-url", server.url, *args, env=env)
        assert proc.returncode == 2 and refused in proc.stderr, (env, args, proc.stderr)

    # Variables beat the data directory; the server's refusal says where the keys came from.
    proc = stratus("invoke", "absent", "--endpoint-url", server.url,
                   "--data-dir", str(server.data_dir),
                   env={**home, "AWS_ACCESS_KEY_ID": "AKIAWRONG", "AWS_SECRET_ACCESS_KEY": "x"})
    assert proc.returncode == 2, proc.stderr
    assert "UnrecognizedClientException" in proc.stderr, proc.stderr
    assert "AKIAWRONG from AWS_ACCESS_KEY_ID in the environment" in proc.stderr

    # Nothing anywhere: a message that says what to set.
    proc = stratus("invoke", "absent", "--endpoint-url", server.url,
                   env={**home, "STRATUS_DATA_DIR": str(tmp_path / "empty")})
    assert proc.returncode == 2 and "no credentials" in proc.stderr, proc.stderr


def test_a_slow_invocation_says_it_is_waiting_on_a_terminal_only(exec_server, tmp_path):
    lam = exec_server.client("lambda")
    create_function(lam, "slow", {"index.py": (
        "import time\n"
        "def handler(event, context):\n"
        "    time.sleep(event['seconds'])\n"
        "    return 'done'\n")}, runtime=PY, handler="index.handler", Timeout=30)
    env = env_for(exec_server, tmp_path)
    # stderr on a pseudo-terminal, as when a person runs it.
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run([str(STRATUS_BIN), "invoke", "slow", '{"seconds": 3}'],
                              env=clean_env(env), stdout=subprocess.PIPE, stderr=follower,
                              text=True, timeout=60)
        os.close(follower)
        follower = None
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the terminal's other side is closed and drained
                break
            if not chunk:
                break
            seen += chunk
    finally:
        if follower is not None:
            os.close(follower)
        os.close(leader)
    assert proc.returncode == 0 and json.loads(proc.stdout) == "done"
    assert "waiting for slow…" in seen.decode(), seen
    # Piped stderr (scripts, CI) gets no progress line.
    proc = stratus("invoke", "slow", '{"seconds": 3}', env=env)
    assert proc.returncode == 0 and "waiting" not in proc.stderr, proc.stderr
