"""Lambda resource-based policies end to end: AddPermission, GetPolicy and RemovePermission with
boto3 and the AWS CLI, on a function and on a published version (functions are not invoked)."""

from __future__ import annotations

import json

import botocore.exceptions
import pytest

from helpers import DEFAULT_ACCOUNT, RUNTIME, aws, create_function

REGION = "us-east-1"
BUCKET_ARN = "arn:aws:s3:::uploads-bucket"
OWNER = "123456789012"


def arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{DEFAULT_ACCOUNT}:function:{name}"


def make(lam, name: str):
    create_function(lam, name, {"bootstrap": "#!/bin/sh\n"}, runtime=RUNTIME, handler="bootstrap")


def error_of(excinfo) -> tuple[str, int, str]:
    err = excinfo.value.response
    return (err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"],
            err["Error"].get("Message", ""))


def test_permission_for_s3_reads_back_as_aws_writes_it(lam):
    make(lam, "thumbs")
    added = lam.add_permission(FunctionName="thumbs", StatementId="s3-invoke",
                               Action="lambda:InvokeFunction", Principal="s3.amazonaws.com",
                               SourceArn=BUCKET_ARN, SourceAccount=OWNER)
    assert added["ResponseMetadata"]["HTTPStatusCode"] == 201
    want = {
        "Sid": "s3-invoke",
        "Effect": "Allow",
        "Principal": {"Service": "s3.amazonaws.com"},
        "Action": "lambda:InvokeFunction",
        "Resource": arn("thumbs"),
        "Condition": {
            "StringEquals": {"AWS:SourceAccount": OWNER},
            "ArnLike": {"AWS:SourceArn": BUCKET_ARN},
        },
    }
    assert json.loads(added["Statement"]) == want

    got = lam.get_policy(FunctionName="thumbs")
    assert json.loads(got["Policy"]) == {"Version": "2012-10-17", "Id": "default",
                                         "Statement": [want]}
    assert got["RevisionId"]

    # The same statement id again is a conflict, and changes nothing.
    with pytest.raises(lam.exceptions.ResourceConflictException) as excinfo:
        lam.add_permission(FunctionName="thumbs", StatementId="s3-invoke", Action="lambda:*",
                           Principal="*")
    code, status, message = error_of(excinfo)
    assert status == 409 and "s3-invoke" in message
    assert lam.get_policy(FunctionName="thumbs")["Policy"] == got["Policy"]

    # An account becomes its root user; a stale RevisionId is refused.
    with pytest.raises(lam.exceptions.PreconditionFailedException):
        lam.add_permission(FunctionName="thumbs", StatementId="other-account",
                           Action="lambda:GetFunction", Principal="210987654321",
                           RevisionId="not-the-revision")
    second = lam.add_permission(FunctionName=arn("thumbs"), StatementId="other-account",
                                Action="lambda:GetFunction", Principal="210987654321",
                                RevisionId=got["RevisionId"])
    assert json.loads(second["Statement"])["Principal"] == {
        "AWS": "arn:aws:iam::210987654321:root"}
    assert "Condition" not in json.loads(second["Statement"])

    lam.remove_permission(FunctionName="thumbs", StatementId="s3-invoke")
    left = json.loads(lam.get_policy(FunctionName="thumbs")["Policy"])["Statement"]
    assert [s["Sid"] for s in left] == ["other-account"]
    lam.remove_permission(FunctionName="thumbs", StatementId="other-account")
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as excinfo:
        lam.get_policy(FunctionName="thumbs")
    assert error_of(excinfo)[1] == 404
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.remove_permission(FunctionName="thumbs", StatementId="other-account")


def test_a_version_has_a_policy_of_its_own(lam):
    make(lam, "versioned")
    version = lam.publish_version(FunctionName="versioned")["Version"]
    lam.add_permission(FunctionName="versioned", StatementId="v", Qualifier=version,
                       Action="lambda:InvokeFunction", Principal="events.amazonaws.com")
    # The function itself still has none.
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_policy(FunctionName="versioned")
    doc = json.loads(lam.get_policy(FunctionName="versioned", Qualifier=version)["Policy"])
    assert [s["Resource"] for s in doc["Statement"]] == [f"{arn('versioned')}:{version}"]

    # The same id on the function is another policy's statement.
    lam.add_permission(FunctionName="versioned", StatementId="v",
                       Action="lambda:InvokeFunction", Principal="*")
    doc = json.loads(lam.get_policy(FunctionName="versioned")["Policy"])
    assert [s["Resource"] for s in doc["Statement"]] == [arn("versioned")]

    # No version 9, and no policy of its own for $LATEST.
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.add_permission(FunctionName="versioned", StatementId="x", Qualifier="9",
                           Action="lambda:InvokeFunction", Principal="*")
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.add_permission(FunctionName="versioned", StatementId="x", Qualifier="$LATEST",
                           Action="lambda:InvokeFunction", Principal="*")

    # Deleting the version deletes its policy; the function's stays.
    lam.delete_function(FunctionName="versioned", Qualifier=version)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_policy(FunctionName="versioned", Qualifier=version)
    assert lam.get_policy(FunctionName="versioned")["Policy"]


def test_invalid_input_is_refused_with_the_models_errors(lam):
    make(lam, "strict")
    cases = [
        (dict(StatementId="bad id", Action="lambda:InvokeFunction", Principal="*"),
         "ValidationException"),
        (dict(StatementId="s", Action="s3:GetObject", Principal="*"), "ValidationException"),
        (dict(StatementId="s", Action="lambda:InvokeFunction", Principal="*",
              SourceAccount="12"), "ValidationException"),
        (dict(StatementId="s", Action="lambda:InvokeFunction", Principal="nobody"),
         "InvalidParameterValueException"),
    ]
    for kw, want in cases:
        with pytest.raises(botocore.exceptions.ClientError) as excinfo:
            lam.add_permission(FunctionName="strict", **kw)
        assert error_of(excinfo)[0] == want, kw
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.add_permission(FunctionName="missing", StatementId="s",
                           Action="lambda:InvokeFunction", Principal="*")


def test_cli_add_permission(server, tmp_path):
    make(server.client("lambda"), "cli-target")
    out = aws(server, tmp_path, "lambda", "add-permission", "--function-name", "cli-target",
              "--statement-id", "api-gateway", "--action", "lambda:InvokeFunction",
              "--principal", "apigateway.amazonaws.com", "--source-arn",
              f"arn:aws:execute-api:{REGION}:{OWNER}:abc123/*/GET/items").stdout
    statement = json.loads(json.loads(out)["Statement"])
    assert statement["Principal"] == {"Service": "apigateway.amazonaws.com"}
    assert statement["Condition"] == {
        "ArnLike": {"AWS:SourceArn": f"arn:aws:execute-api:{REGION}:{OWNER}:abc123/*/GET/items"}}
    policy = json.loads(aws(server, tmp_path, "lambda", "get-policy", "--function-name",
                            "cli-target").stdout)
    assert json.loads(policy["Policy"])["Statement"] == [statement]
