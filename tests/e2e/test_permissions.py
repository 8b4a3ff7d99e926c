"""Permissions enforced on every request: a user's policies, an assumed role's session, a
function's execution role (from inside the function), a function's own policy, and
CreateFunction's check of the execution role — with AWS's errors, through boto3 and the CLI."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError

from helpers import (DEFAULT_ACCOUNT, LAMBDA_TRUST, ROLE, RUNTIME, aws, create_function, ensure_role, invoke,
                     make_zip)

READ_ONLY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["lambda:Get*", "lambda:List*"], "Resource": "*"}]})


def policy(*statements) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def error_of(excinfo) -> tuple[str, int, str]:
    e = excinfo.value
    return (e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"],
            e.response["Error"].get("Message", ""))


def client_with(server, service: str, creds: dict):
    return boto3.client(service, endpoint_url=server.url, region_name=server.region,
                        aws_access_key_id=creds["AccessKeyId"],
                        aws_secret_access_key=creds["SecretAccessKey"],
                        aws_session_token=creds.get("SessionToken"))


def quiet_function(lam, name: str):
    """A function nobody runs here (DryRun and control-plane calls only)."""
    lam.create_function(FunctionName=name, Runtime=RUNTIME, Role=ROLE, Handler="bootstrap",
                        Code={"ZipFile": make_zip({"bootstrap": "#!/bin/sh\n"})})


@pytest.fixture
def iam(server):
    return server.client("iam")


@pytest.fixture
def account(server):
    return server.client("sts").get_caller_identity()["Account"]


def user_with(iam, name: str, document: str) -> dict:
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=document)
    return iam.create_access_key(UserName=name)["AccessKey"]


def test_a_read_only_user_lists_but_cannot_delete(server, lam, iam, account):
    quiet_function(lam, "kept")
    ro = client_with(server, "lambda", user_with(iam, "reader", READ_ONLY))
    assert [f["FunctionName"] for f in ro.list_functions()["Functions"]] == ["kept"]
    assert ro.get_function(FunctionName="kept")["Configuration"]["FunctionName"] == "kept"
    with pytest.raises(ClientError) as e:
        ro.delete_function(FunctionName="kept")
    code, status, message = error_of(e)
    assert (code, status) == ("AccessDeniedException", 403)
    assert message == (
        f"User: arn:aws:iam::{account}:user/reader is not authorized to perform: "
        f"lambda:DeleteFunction on resource: arn:aws:lambda:us-east-1:{account}:function:kept "
        "because no identity-based policy allows the lambda:DeleteFunction action")
    # Nor may it grant itself more.
    with pytest.raises(ClientError) as e:
        client_with(server, "iam", iam.create_access_key(UserName="reader")["AccessKey"]) \
            .put_user_policy(UserName="reader", PolicyName="more",
                             PolicyDocument=policy({"Effect": "Allow", "Action": "*",
                                                    "Resource": "*"}))
    assert error_of(e)[:2] == ("AccessDenied", 403)
    assert lam.get_function(FunctionName="kept")


def test_an_explicit_deny_wins_and_group_policies_count(server, lam, iam):
    quiet_function(lam, "open")
    quiet_function(lam, "secret")
    iam.create_group(GroupName="devs")
    iam.put_group_policy(GroupName="devs", PolicyName="all", PolicyDocument=policy(
        {"Effect": "Allow", "Action": "lambda:*", "Resource": "*"}))
    keys = user_with(iam, "dev", policy({"Effect": "Deny", "Action": "lambda:*",
                                         "Resource": "arn:aws:lambda:*:*:function:secret*"}))
    dev = client_with(server, "lambda", keys)
    # Not in the group yet: only the deny.
    with pytest.raises(ClientError) as e:
        dev.get_function(FunctionName="open")
    assert error_of(e)[0] == "AccessDeniedException"
    iam.add_user_to_group(GroupName="devs", UserName="dev")
    assert dev.get_function(FunctionName="open")
    with pytest.raises(ClientError) as e:
        dev.get_function(FunctionName="secret")
    assert "with an explicit deny in an identity-based policy" in error_of(e)[2]


def test_an_assumed_roles_session_can_do_what_the_role_allows(server, lam, iam, account):
    quiet_function(lam, "f")
    trust = policy({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                    "Action": "sts:AssumeRole"})
    iam.create_role(RoleName="auditor", AssumeRolePolicyDocument=trust)
    iam.put_role_policy(RoleName="auditor", PolicyName="read", PolicyDocument=READ_ONLY)
    creds = server.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/auditor", RoleSessionName="audit")["Credentials"]
    session = client_with(server, "lambda", creds)
    assert [f["FunctionName"] for f in session.list_functions()["Functions"]] == ["f"]
    with pytest.raises(ClientError) as e:
        session.delete_function(FunctionName="f")
    assert error_of(e)[2].startswith(
        f"User: arn:aws:sts::{account}:assumed-role/auditor/audit is not authorized")
    # A session key without its token, or with another, is not accepted.
    with pytest.raises(ClientError) as e:
        client_with(server, "lambda", {**creds, "SessionToken": "forged"}).list_functions()
    assert error_of(e)[:2] == ("UnrecognizedClientException", 403)
    # A user may assume the role only if its own policies allow sts:AssumeRole.
    keys = user_with(iam, "nobody", READ_ONLY)
    with pytest.raises(ClientError) as e:
        client_with(server, "sts", keys).assume_role(
            RoleArn=f"arn:aws:iam::{account}:role/auditor", RoleSessionName="x1")
    assert error_of(e)[:2] == ("AccessDenied", 403)


def test_a_function_needs_a_role_lambda_may_assume(lam, iam, account):
    code = {"ZipFile": make_zip({"bootstrap": "#!/bin/sh\n"})}
    for role in (f"arn:aws:iam::{account}:role/missing",
                 ensure_role(iam, "for-ec2", trust=LAMBDA_TRUST.replace("lambda.", "ec2."))):
        with pytest.raises(ClientError) as e:
            lam.create_function(FunctionName="f", Runtime=RUNTIME, Role=role,
                                Handler="bootstrap", Code=code)
        assert error_of(e) == ("InvalidParameterValueException", 400,
                               "The role defined for the function cannot be assumed by Lambda.")
    quiet_function(lam, "f")
    with pytest.raises(ClientError) as e:
        lam.update_function_configuration(FunctionName="f",
                                          Role=f"arn:aws:iam::{account}:role/missing")
    assert error_of(e)[0] == "InvalidParameterValueException"


def test_a_functions_policy_lets_a_named_principal_invoke(server, lam, iam, account):
    quiet_function(lam, "shared")
    keys = user_with(iam, "partner", policy({"Effect": "Allow", "Action": "logs:*",
                                             "Resource": "*"}))
    partner = client_with(server, "lambda", keys)
    with pytest.raises(ClientError) as e:
        partner.invoke(FunctionName="shared", InvocationType="DryRun")
    assert error_of(e)[0] == "AccessDeniedException"
    lam.add_permission(FunctionName="shared", StatementId="partner",
                       Action="lambda:InvokeFunction",
                       Principal=f"arn:aws:iam::{account}:user/partner")
    assert partner.invoke(FunctionName="shared", InvocationType="DryRun")["StatusCode"] == 204
    # What the statement grants, and nothing else.
    with pytest.raises(ClientError) as e:
        partner.delete_function(FunctionName="shared")
    assert error_of(e)[0] == "AccessDeniedException"


def test_the_cli_as_a_limited_user(server, tmp_path, lam, iam):
    quiet_function(lam, "f")
    keys = user_with(iam, "cli-user", READ_ONLY)
    env = {"AWS_ACCESS_KEY_ID": keys["AccessKeyId"],
           "AWS_SECRET_ACCESS_KEY": keys["SecretAccessKey"]}
    out = aws(server, tmp_path, "lambda", "list-functions", extra_env=env)
    assert [f["FunctionName"] for f in json.loads(out.stdout)["Functions"]] == ["f"]
    refused = aws(server, tmp_path, "lambda", "delete-function", "--function-name", "f",
                  extra_env=env, check=False)
    assert refused.returncode != 0 and "AccessDeniedException" in refused.stderr
    me = json.loads(aws(server, tmp_path, "sts", "get-caller-identity", extra_env=env).stdout)
    assert me["Arn"].endswith(":user/cli-user")


# --- from inside a function ------------------------------------------------------------------

# Signs a request with the function's injected session, as an SDK would (the sandbox has no
# SDK), and reports the status and error type.
ACT = r'''
import datetime, hashlib, hmac, json, os, urllib.error, urllib.request

def _h(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()

def call(method, path):
    endpoint = os.environ["AWS_ENDPOINT_URL"].rstrip("/")
    host = endpoint.split("://", 1)[1]
    region = os.environ["AWS_REGION"]
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    day = now[:8]
    empty = hashlib.sha256(b"").hexdigest()
    headers = {"host": host, "x-amz-date": now, "x-amz-content-sha256": empty,
               "x-amz-security-token": os.environ["AWS_SESSION_TOKEN"]}
    names = sorted(headers)
    canonical = "\n".join([method, path, "", "".join(f"{k}:{headers[k]}\n" for k in names),
                           ";".join(names), empty])
    scope = f"{day}/{region}/lambda/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", now, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = _h(_h(_h(_h(("AWS4" + os.environ["AWS_SECRET_ACCESS_KEY"]).encode(), day), region),
                "lambda"), "aws4_request")
    sig = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={os.environ['AWS_ACCESS_KEY_ID']}"
                                f"/{scope}, SignedHeaders={';'.join(names)}, Signature={sig}")
    del headers["host"]
    req = urllib.request.Request(endpoint + path, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return {"status": resp.status}
    except urllib.error.HTTPError as e:
        return {"status": e.code, "type": e.headers.get("x-amzn-ErrorType"),
                "message": json.loads(e.read() or b"{}").get("Message")}

def handler(event, context):
    return {"get": call("GET", f"/2015-03-31/functions/{event['target']}"),
            "delete": call("DELETE", f"/2015-03-31/functions/{event['target']}")}
'''


def test_a_function_can_do_what_its_role_allows_and_nothing_else(exec_server, exec_lam):
    account = DEFAULT_ACCOUNT
    iam = exec_server.client("iam")
    role = ensure_role(iam, "reads-lambda", policy=READ_ONLY)
    quiet_function(exec_lam, "victim")
    create_function(exec_lam, "actor", {"act.py": ACT}, runtime="python3.11",
                    handler="act.handler", Role=role, Timeout=30)
    got = invoke(exec_lam, "actor", {"target": "victim"})
    assert got.function_error is None, got.raw
    assert got.payload["get"] == {"status": 200}
    assert got.payload["delete"]["status"] == 403, got.payload
    assert got.payload["delete"]["type"].startswith("AccessDeniedException")
    assert got.payload["delete"]["message"].startswith(
        f"User: arn:aws:sts::{account}:assumed-role/reads-lambda/actor is not authorized")
    assert exec_lam.get_function(FunctionName="victim")
    # The role's policy gone, then the role: the function still runs (as one created before
    # IAM existed does), and may do nothing.
    iam.delete_role_policy(RoleName="reads-lambda", PolicyName="all")
    iam.delete_role(RoleName="reads-lambda")
    got = invoke(exec_lam, "actor", {"target": "victim"})
    assert got.function_error is None, got.raw
    assert got.payload["get"]["status"] == 403, got.payload
