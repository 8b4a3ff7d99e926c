"""The real AWS CLI (v1, from PyPI) against the server, configured only through the
credentials file the server wrote and `--endpoint-url`."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

from helpers import ROLE, RUNTIME, aws, make_zip, sha256_b64


def aws_json(server, tmp_path, *args):
    out = aws(server, tmp_path, *args).stdout
    return json.loads(out) if out.strip() else None


def test_cli_function_lifecycle(server, tmp_path):
    code = make_zip(seed="cli")
    zip_path = tmp_path / "function.zip"
    zip_path.write_bytes(code)

    created = aws_json(server, tmp_path, "lambda", "create-function",
                       "--function-name", "cli-fn", "--runtime", RUNTIME, "--role", ROLE,
                       "--handler", "bootstrap", "--zip-file", f"fileb://{zip_path}",
                       "--tags", "team=cli", "--description", "from the cli")
    assert created["FunctionName"] == "cli-fn"
    assert created["FunctionArn"] == "arn:aws:lambda:us-east-1:000000000000:function:cli-fn"
    assert created["CodeSha256"] == sha256_b64(code)
    assert created["CodeSize"] == len(code)

    aws(server, tmp_path, "lambda", "wait", "function-active-v2", "--function-name", "cli-fn")

    listed = aws_json(server, tmp_path, "lambda", "list-functions")
    assert [f["FunctionName"] for f in listed["Functions"]] == ["cli-fn"]

    got = aws_json(server, tmp_path, "lambda", "get-function", "--function-name", "cli-fn")
    assert got["Configuration"]["State"] == "Active"
    assert got["Configuration"]["Description"] == "from the cli"
    assert got["Tags"] == {"team": "cli"}
    with urllib.request.urlopen(got["Code"]["Location"], timeout=30) as r:
        assert r.read() == code

    updated = aws_json(server, tmp_path, "lambda", "update-function-configuration",
                       "--function-name", "cli-fn", "--memory-size", "256", "--timeout", "15",
                       "--environment", "Variables={COLOR=red,SIZE=xl}")
    assert updated["MemorySize"] == 256 and updated["Timeout"] == 15
    assert updated["Environment"]["Variables"] == {"COLOR": "red", "SIZE": "xl"}
    assert updated["LastUpdateStatus"] == "Successful"

    conf = aws_json(server, tmp_path, "lambda", "get-function-configuration",
                    "--function-name", "cli-fn")
    assert conf["MemorySize"] == 256
    assert conf["Environment"]["Variables"] == {"COLOR": "red", "SIZE": "xl"}

    aws(server, tmp_path, "lambda", "delete-function", "--function-name", "cli-fn")
    assert aws_json(server, tmp_path, "lambda", "list-functions")["Functions"] == []

    gone = aws(server, tmp_path, "lambda", "get-function", "--function-name", "cli-fn", check=False)
    assert gone.returncode != 0
    assert "ResourceNotFoundException" in gone.stderr


def test_cli_missing_function_is_an_error(server, tmp_path):
    proc = aws(server, tmp_path, "lambda", "get-function", "--function-name", "never-was",
               check=False)
    assert proc.returncode != 0
    assert "ResourceNotFoundException" in proc.stderr
    assert proc.stdout.strip() == ""


def test_cli_account_settings(server, tmp_path):
    s = aws_json(server, tmp_path, "lambda", "get-account-settings")
    assert s["AccountLimit"]["ConcurrentExecutions"] == 1000
    assert s["AccountUsage"]["FunctionCount"] == 0


def test_cli_with_wrong_credentials_is_refused(server, tmp_path):
    bad = tmp_path / "bad-credentials"
    bad.write_text("[default]\naws_access_key_id = AKIAUNKNOWNKEY000000\n"
                   "aws_secret_access_key = nope\n")
    proc = aws(server, tmp_path, "lambda", "list-functions", check=False,
               extra_env={"AWS_SHARED_CREDENTIALS_FILE": str(bad)})
    assert proc.returncode != 0
    assert "UnrecognizedClientException" in proc.stderr
