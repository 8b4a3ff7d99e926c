"""The Lambda control plane, driven with boto3 exactly as a user would."""

from __future__ import annotations

import json
import os
import urllib.parse
import urllib.request
import zipfile
import io

import botocore.exceptions
import pytest

from helpers import (DEFAULT_ACCOUNT, ROLE, RUNTIME, http_request, make_zip, sha256_b64,
                     sha256_hex, signed_call, zip_of_zeros)

REGION = "us-east-1"
FAST_WAIT = {"Delay": 0.2, "MaxAttempts": 150}


def arn(name, region=REGION, account=DEFAULT_ACCOUNT):
    return f"arn:aws:lambda:{region}:{account}:function:{name}"


def create(lam, name, code=None, **kw):
    params = dict(FunctionName=name, Runtime=RUNTIME, Role=ROLE, Handler="bootstrap",
                  Code={"ZipFile": code if code is not None else make_zip(seed=name)})
    params.update(kw)
    return lam.create_function(**params)


def wait_active(lam, name):
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig=FAST_WAIT)


def wait_updated(lam, name):
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig=FAST_WAIT)


def create_active(lam, name, code=None, **kw):
    resp = create(lam, name, code, **kw)
    wait_active(lam, name)
    return resp


def list_names(lam):
    names = []
    for page in lam.get_paginator("list_functions").paginate():
        names += [f["FunctionName"] for f in page["Functions"]]
    return names


def status_of(err: botocore.exceptions.ClientError) -> int:
    return err.response["ResponseMetadata"]["HTTPStatusCode"]


def code_of(err: botocore.exceptions.ClientError) -> str:
    return err.response["Error"]["Code"]


def message_of(err: botocore.exceptions.ClientError) -> str:
    return err.response["Error"].get("Message", "")


def assert_absent(server, lam, name, code: bytes | None = None):
    """Nothing partial stored: the refused function is not there in any way."""
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName=name)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function_configuration(FunctionName=name)
    assert name not in list_names(lam)
    if code is not None:
        assert sha256_hex(code) not in server.blob_names(), "a refused code package was kept"


def download(location: str) -> bytes:
    with urllib.request.urlopen(location, timeout=30) as r:
        assert r.status == 200
        return r.read()


# --- CreateFunction / GetFunction ------------------------------------------------------------


def test_create_function_pending_then_active(lam):
    code = make_zip(seed="first")
    resp = create(lam, "first", code, Description="the first one")
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert resp["State"] == "Pending"
    assert resp["FunctionName"] == "first"
    assert resp["FunctionArn"] == arn("first")
    assert resp["CodeSha256"] == sha256_b64(code)
    assert resp["CodeSize"] == len(code)
    assert resp["Runtime"] == RUNTIME
    assert resp["Handler"] == "bootstrap"
    assert resp["Role"] == ROLE
    assert resp["Description"] == "the first one"
    assert resp["Version"] == "$LATEST"
    assert resp["MemorySize"] == 128
    assert resp["Timeout"] == 3
    assert resp["PackageType"] == "Zip"
    assert resp["Architectures"] == ["x86_64"]
    assert resp["EphemeralStorage"] == {"Size": 512}
    assert resp["RevisionId"]
    assert resp["LastModified"]

    wait_active(lam, "first")
    conf = lam.get_function_configuration(FunctionName="first")
    assert conf["State"] == "Active"
    assert conf["LastUpdateStatus"] == "Successful"
    for key in ("FunctionName", "FunctionArn", "CodeSha256", "CodeSize", "Runtime", "Handler",
                "Role", "Description", "Version", "MemorySize", "Timeout", "PackageType"):
        assert conf[key] == resp[key], key


def test_get_function_returns_configuration_code_and_tags(server, lam):
    code = make_zip({"bootstrap": "#!/bin/sh\necho hi\n", "lib/data.txt": "x" * 1000})
    create_active(lam, "getme", code, Tags={"team": "blue", "env": "test"},
                  Environment={"Variables": {"GREETING": "hello"}})
    resp = lam.get_function(FunctionName="getme")
    conf = resp["Configuration"]
    assert conf["FunctionName"] == "getme"
    assert conf["FunctionArn"] == arn("getme")
    assert conf["CodeSha256"] == sha256_b64(code)
    assert conf["CodeSize"] == len(code)
    assert conf["State"] == "Active"
    assert conf["Environment"] == {"Variables": {"GREETING": "hello"}}
    assert resp["Tags"] == {"team": "blue", "env": "test"}
    assert resp["Code"]["RepositoryType"] == "S3"

    location = resp["Code"]["Location"]
    loc, srv = urllib.parse.urlsplit(location), urllib.parse.urlsplit(server.url)
    assert loc.scheme == "http"
    assert (loc.hostname, loc.port) == (srv.hostname, srv.port)
    assert download(location) == code


def test_code_location_requires_its_signature(server, lam):
    code = make_zip(seed="guarded")
    create(lam, "guarded", code)
    location = lam.get_function(FunctionName="guarded")["Code"]["Location"]
    parts = urllib.parse.urlsplit(location)
    assert parts.query, "Code.Location must be a presigned URL"
    bare = urllib.parse.urlunsplit(parts._replace(query=""))
    resp = http_request("GET", bare)
    assert resp.status >= 400 and resp.body != code
    # The same signature must not open another function's code.
    other = make_zip(seed="other")
    create(lam, "other", other)
    other_loc = lam.get_function(FunctionName="other")["Code"]["Location"]
    op = urllib.parse.urlsplit(other_loc)
    swapped = urllib.parse.urlunsplit(op._replace(query=parts.query))
    if swapped != other_loc:
        resp = http_request("GET", swapped)
        assert resp.status >= 400 and resp.body != other


def test_get_function_qualifier_latest(lam):
    create(lam, "latest")
    resp = lam.get_function(FunctionName="latest", Qualifier="$LATEST")
    assert resp["Configuration"]["Version"] == "$LATEST"


def test_publish_on_create_makes_version_1(lam):
    code = make_zip(seed="pub")
    resp = create(lam, "pub", code, Publish=True)
    assert resp["Version"] == "1"
    v1 = lam.get_function(FunctionName="pub", Qualifier="1")
    assert v1["Configuration"]["Version"] == "1"
    assert v1["Configuration"]["FunctionArn"] == arn("pub") + ":1"
    assert v1["Configuration"]["CodeSha256"] == sha256_b64(code)
    assert download(v1["Code"]["Location"]) == code
    latest = lam.get_function(FunctionName="pub")
    assert latest["Configuration"]["Version"] == "$LATEST"
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName="pub", Qualifier="2")
    # ListFunctions shows $LATEST once, not each version.
    listed = [f for f in lam.list_functions()["Functions"] if f["FunctionName"] == "pub"]
    assert len(listed) == 1 and listed[0]["Version"] == "$LATEST"


def test_no_version_without_publish(lam):
    create(lam, "unpublished")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName="unpublished", Qualifier="1")


# --- names, listing ---------------------------------------------------------------------------


def test_name_forms(lam):
    create_active(lam, "forms")
    for form in ("forms", f"{DEFAULT_ACCOUNT}:function:forms", arn("forms")):
        conf = lam.get_function(FunctionName=form)["Configuration"]
        assert conf["FunctionName"] == "forms", form
        assert conf["FunctionArn"] == arn("forms"), form
        assert lam.get_function_configuration(FunctionName=form)["FunctionName"] == "forms"
    resp = lam.update_function_configuration(FunctionName=arn("forms"), Description="via arn")
    assert resp["Description"] == "via arn"
    lam.delete_function(FunctionName=f"{DEFAULT_ACCOUNT}:function:forms")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName="forms")


def test_create_with_arn_as_name(lam):
    resp = create(lam, arn("byarn"), code=make_zip(seed="byarn"))
    assert resp["FunctionName"] == "byarn"
    assert resp["FunctionArn"] == arn("byarn")
    assert lam.get_function(FunctionName="byarn")["Configuration"]["FunctionName"] == "byarn"


def test_list_functions_pagination(lam):
    names = ["fn-c", "fn-a", "fn-e", "fn-b", "fn-d"]
    for n in names:
        create(lam, n)
    full = lam.list_functions()
    assert [f["FunctionName"] for f in full["Functions"]] == sorted(names)
    assert "NextMarker" not in full
    assert all(f["FunctionArn"] == arn(f["FunctionName"]) for f in full["Functions"])

    p1 = lam.list_functions(MaxItems=2)
    assert [f["FunctionName"] for f in p1["Functions"]] == ["fn-a", "fn-b"]
    assert p1.get("NextMarker")
    p2 = lam.list_functions(MaxItems=2, Marker=p1["NextMarker"])
    assert [f["FunctionName"] for f in p2["Functions"]] == ["fn-c", "fn-d"]
    assert p2.get("NextMarker")
    p3 = lam.list_functions(MaxItems=2, Marker=p2["NextMarker"])
    assert [f["FunctionName"] for f in p3["Functions"]] == ["fn-e"]
    assert "NextMarker" not in p3

    seen = []
    for page in lam.get_paginator("list_functions").paginate(PaginationConfig={"PageSize": 3}):
        assert len(page["Functions"]) <= 3
        seen += [f["FunctionName"] for f in page["Functions"]]
    assert seen == sorted(names)


def test_list_functions_pages_hold_at_most_50(lam):
    names = [f"many-{i:03d}" for i in range(55)]
    for n in reversed(names):
        create(lam, n)
    first = lam.list_functions()
    assert [f["FunctionName"] for f in first["Functions"]] == names[:50]
    assert first.get("NextMarker")
    capped = lam.list_functions(MaxItems=1000)
    assert len(capped["Functions"]) == 50 and capped.get("NextMarker")
    rest = lam.list_functions(Marker=first["NextMarker"])
    assert [f["FunctionName"] for f in rest["Functions"]] == names[50:]
    assert "NextMarker" not in rest
    assert list_names(lam) == names


def test_published_version_is_immutable(lam):
    v1_code, v2_code = make_zip(seed="imm-1"), make_zip(seed="imm-2")
    create_active(lam, "imm", v1_code, Publish=True, Description="one", MemorySize=256)
    lam.update_function_configuration(FunctionName="imm", Description="two", MemorySize=1024)
    lam.update_function_code(FunctionName="imm", ZipFile=v2_code)
    wait_updated(lam, "imm")
    v1 = lam.get_function(FunctionName="imm", Qualifier="1")
    assert v1["Configuration"]["Description"] == "one"
    assert v1["Configuration"]["MemorySize"] == 256
    assert v1["Configuration"]["CodeSha256"] == sha256_b64(v1_code)
    assert download(v1["Code"]["Location"]) == v1_code
    latest = lam.get_function(FunctionName="imm")
    assert latest["Configuration"]["Description"] == "two"
    assert latest["Configuration"]["CodeSha256"] == sha256_b64(v2_code)
    assert download(latest["Code"]["Location"]) == v2_code


def test_list_functions_after_delete(lam):
    for n in ("la", "lb", "lc"):
        create(lam, n)
    resp = lam.delete_function(FunctionName="lb")
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert list_names(lam) == ["la", "lc"]


# --- updates, revisions ---------------------------------------------------------------------


def test_update_function_configuration_takes_effect_at_once(lam):
    code = make_zip(seed="cfg")
    created = create_active(lam, "cfg", code)
    resp = lam.update_function_configuration(
        FunctionName="cfg", MemorySize=256, Timeout=30, Description="changed",
        Handler="other.handler", Environment={"Variables": {"AA": "1", "B_2": "two"}},
        EphemeralStorage={"Size": 1024})
    assert resp["LastUpdateStatus"] == "Successful"
    assert resp["MemorySize"] == 256 and resp["Timeout"] == 30
    assert resp["Description"] == "changed" and resp["Handler"] == "other.handler"
    assert resp["Environment"] == {"Variables": {"AA": "1", "B_2": "two"}}
    assert resp["EphemeralStorage"] == {"Size": 1024}
    assert resp["CodeSha256"] == sha256_b64(code)
    assert resp["RevisionId"] != created["RevisionId"]

    conf = lam.get_function_configuration(FunctionName="cfg")
    assert conf["MemorySize"] == 256 and conf["Timeout"] == 30
    assert conf["Description"] == "changed" and conf["Handler"] == "other.handler"
    assert conf["Environment"] == {"Variables": {"AA": "1", "B_2": "two"}}
    assert conf["EphemeralStorage"] == {"Size": 1024}
    assert conf["RevisionId"] == resp["RevisionId"]
    assert conf["LastUpdateStatus"] == "Successful"


def test_update_function_code(lam):
    old, new = make_zip(seed="v1"), make_zip(seed="v2")
    created = create_active(lam, "coded", old)
    resp = lam.update_function_code(FunctionName="coded", ZipFile=new)
    assert resp["LastUpdateStatus"] == "InProgress"
    assert resp["CodeSha256"] == sha256_b64(new)
    assert resp["CodeSize"] == len(new)
    assert resp["RevisionId"] != created["RevisionId"]
    wait_updated(lam, "coded")
    got = lam.get_function(FunctionName="coded")
    assert got["Configuration"]["LastUpdateStatus"] == "Successful"
    assert got["Configuration"]["CodeSha256"] == sha256_b64(new)
    assert got["Configuration"]["RevisionId"] not in (created["RevisionId"],)
    assert download(got["Code"]["Location"]) == new


def test_update_code_with_invalid_zip_keeps_old_code(server, lam):
    code = make_zip(seed="keep")
    create_active(lam, "keep", code)
    junk = b"this is not a zip"
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as e:
        lam.update_function_code(FunctionName="keep", ZipFile=junk)
    assert "Could not unzip uploaded file" in message_of(e.value)
    assert sha256_hex(junk) not in server.blob_names()
    got = lam.get_function(FunctionName="keep")
    assert got["Configuration"]["CodeSha256"] == sha256_b64(code)
    assert download(got["Code"]["Location"]) == code


def test_stale_revision_is_refused(server, lam):
    code = make_zip(seed="rev")
    r0 = create_active(lam, "rev", code)["RevisionId"]
    r1 = lam.update_function_configuration(FunctionName="rev", MemorySize=256)["RevisionId"]
    assert r1 != r0

    with pytest.raises(lam.exceptions.PreconditionFailedException) as e:
        lam.update_function_configuration(FunctionName="rev", MemorySize=512, RevisionId=r0)
    assert status_of(e.value) == 412
    refused = make_zip(seed="rev2")
    with pytest.raises(lam.exceptions.PreconditionFailedException) as e:
        lam.update_function_code(FunctionName="rev", ZipFile=refused, RevisionId=r0)
    assert status_of(e.value) == 412
    assert sha256_hex(refused) not in server.blob_names(), "a refused code package was kept"

    conf = lam.get_function_configuration(FunctionName="rev")
    assert conf["MemorySize"] == 256
    assert conf["CodeSha256"] == sha256_b64(code)
    assert conf["RevisionId"] == r1

    r2 = lam.update_function_configuration(FunctionName="rev", MemorySize=512, RevisionId=r1)["RevisionId"]
    assert r2 not in (r0, r1)
    new = make_zip(seed="rev3")
    r3 = lam.update_function_code(FunctionName="rev", ZipFile=new, RevisionId=r2)["RevisionId"]
    assert r3 not in (r0, r1, r2)
    wait_updated(lam, "rev")
    assert lam.get_function_configuration(FunctionName="rev")["CodeSha256"] == sha256_b64(new)


# --- tags -----------------------------------------------------------------------------------


def test_tags(lam):
    create(lam, "tagged", Tags={"team": "blue", "env": "test"})
    fn_arn = arn("tagged")
    assert lam.list_tags(Resource=fn_arn)["Tags"] == {"team": "blue", "env": "test"}
    lam.tag_resource(Resource=fn_arn, Tags={"owner": "me", "env": "prod"})
    assert lam.list_tags(Resource=fn_arn)["Tags"] == {"team": "blue", "env": "prod", "owner": "me"}
    lam.untag_resource(Resource=fn_arn, TagKeys=["team", "not-there"])
    assert lam.list_tags(Resource=fn_arn)["Tags"] == {"env": "prod", "owner": "me"}
    assert lam.get_function(FunctionName="tagged")["Tags"] == {"env": "prod", "owner": "me"}


def test_tags_on_missing_function(lam):
    missing = arn("ghost")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.list_tags(Resource=missing)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.tag_resource(Resource=missing, Tags={"a": "b"})
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.untag_resource(Resource=missing, TagKeys=["a"])


# --- account settings ---------------------------------------------------------------------


def test_account_settings(lam):
    s = lam.get_account_settings()
    assert s["AccountLimit"]["ConcurrentExecutions"] == 1000
    assert s["AccountLimit"]["CodeSizeZipped"] == 52428800
    assert s["AccountLimit"]["CodeSizeUnzipped"] == 262144000
    assert s["AccountUsage"]["FunctionCount"] == 0
    create(lam, "count-a")
    create(lam, "count-b", Publish=True)
    assert lam.get_account_settings()["AccountUsage"]["FunctionCount"] == 2
    lam.delete_function(FunctionName="count-a")
    assert lam.get_account_settings()["AccountUsage"]["FunctionCount"] == 1


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("op", [
    "get_function", "get_function_configuration", "delete_function",
    "update_function_configuration", "update_function_code",
])
def test_missing_function_is_resource_not_found(lam, op):
    kwargs = {"FunctionName": "nope"}
    if op == "update_function_configuration":
        kwargs["Description"] = "x"
    if op == "update_function_code":
        kwargs["ZipFile"] = make_zip(seed="nope")
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as e:
        getattr(lam, op)(**kwargs)
    assert status_of(e.value) == 404


def test_delete_twice(lam):
    create(lam, "deleteme")
    assert lam.delete_function(FunctionName="deleteme")["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName="deleteme")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.delete_function(FunctionName="deleteme")
    # The name is free again.
    assert create(lam, "deleteme")["ResponseMetadata"]["HTTPStatusCode"] == 201


def test_create_existing_is_conflict(server, lam):
    code = make_zip(seed="dup1")
    create(lam, "dup", code)
    second = make_zip(seed="dup2")
    with pytest.raises(lam.exceptions.ResourceConflictException) as e:
        create(lam, "dup", second, MemorySize=512)
    assert status_of(e.value) == 409
    assert sha256_hex(second) not in server.blob_names(), "a refused code package was kept"
    conf = lam.get_function_configuration(FunctionName="dup")
    assert conf["CodeSha256"] == sha256_b64(code)
    assert conf["MemorySize"] == 128
    assert list_names(lam) == ["dup"]


def test_invalid_zip_is_refused(server, lam):
    junk = b"PK\x03\x04 definitely not a real zip " + os.urandom(64)
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as e:
        create(lam, "badzip", junk)
    assert status_of(e.value) == 400
    assert "Could not unzip uploaded file" in message_of(e.value)
    assert_absent(server, lam, "badzip", junk)


@pytest.mark.parametrize("runtime", ["python2.1", "cobol9"])
def test_unknown_runtime_lists_offered_runtimes(server, lam, runtime):
    code = make_zip(seed=runtime)
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as e:
        create(lam, "badruntime", code, Runtime=runtime)
    assert status_of(e.value) == 400
    msg = message_of(e.value)
    assert runtime in msg
    assert "provided.al2023" in msg
    assert_absent(server, lam, "badruntime", code)


@pytest.mark.parametrize("override", [
    {"MemorySize": 64}, {"MemorySize": 20000}, {"Timeout": 0}, {"Timeout": 901},
    {"EphemeralStorage": {"Size": 100}}, {"EphemeralStorage": {"Size": 20000}},
], ids=["mem64", "mem20000", "timeout0", "timeout901", "eph100", "eph20000"])
def test_out_of_range_values_are_validation_errors(server, override):
    # botocore would refuse some of these client-side; the server must refuse them too.
    lam = server.client(parameter_validation=False)
    code = make_zip(seed=json.dumps(override))
    with pytest.raises(botocore.exceptions.ClientError) as e:
        create(lam, "outofrange", code, **override)
    assert code_of(e.value) == "ValidationException"
    assert status_of(e.value) == 400
    assert_absent(server, lam, "outofrange", code)


def test_out_of_range_update_is_refused_and_changes_nothing(server):
    lam = server.client(parameter_validation=False)
    create_active(lam, "rangeupd")
    before = lam.get_function_configuration(FunctionName="rangeupd")
    for override in ({"MemorySize": 64}, {"Timeout": 901}):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            lam.update_function_configuration(FunctionName="rangeupd", **override)
        assert code_of(e.value) == "ValidationException"
    after = lam.get_function_configuration(FunctionName="rangeupd")
    assert (after["MemorySize"], after["Timeout"], after["RevisionId"]) == \
        (before["MemorySize"], before["Timeout"], before["RevisionId"])


@pytest.mark.parametrize("override", [
    {"Role": "not-an-arn"}, {"Description": "d" * 257}, {"Handler": "h" * 129},
], ids=["role", "description", "handler"])
def test_model_constraint_violations_are_validation_errors(server, override):
    lam = server.client(parameter_validation=False)
    code = make_zip(seed="constraint" + json.dumps(override))
    with pytest.raises(botocore.exceptions.ClientError) as e:
        create(lam, "constrained", code, **override)
    assert code_of(e.value) == "ValidationException"
    assert status_of(e.value) == 400
    assert_absent(server, lam, "constrained", code)


def test_invalid_function_name_is_validation_error(server):
    lam = server.client(parameter_validation=False)
    for bad in ("bad name!", "x" * 141):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            create(lam, bad)
        assert code_of(e.value) == "ValidationException", bad
        assert status_of(e.value) == 400
    assert list_names(lam) == []


def test_environment_over_4kb_is_refused(server, lam):
    code = make_zip(seed="bigenv")
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as e:
        create(lam, "bigenv", code, Environment={"Variables": {"BIG": "x" * 5000}})
    assert status_of(e.value) == 400
    assert_absent(server, lam, "bigenv", code)


def test_environment_just_under_4kb_is_accepted(lam):
    resp = create(lam, "okenv", Environment={"Variables": {"VV": "x" * 3000}})
    assert resp["Environment"]["Variables"]["VV"] == "x" * 3000


@pytest.mark.parametrize("key", ["AWS_REGION", "AWS_LAMBDA_FUNCTION_NAME", "AWS_ACCESS_KEY_ID",
                                 "AWS_SECRET_ACCESS_KEY", "AWS_LAMBDA_RUNTIME_API",
                                 "LAMBDA_TASK_ROOT"])
def test_reserved_environment_key_is_refused(server, lam, key):
    code = make_zip(seed="reserved" + key)
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as e:
        create(lam, "reserved", code, Environment={"Variables": {key: "x", "FINE": "y"}})
    assert key in message_of(e.value)
    assert_absent(server, lam, "reserved", code)


def test_reserved_environment_key_on_update_changes_nothing(lam):
    create_active(lam, "resupd", Environment={"Variables": {"KEEP": "me"}})
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.update_function_configuration(FunctionName="resupd",
                                          Environment={"Variables": {"AWS_REGION": "x"}})
    conf = lam.get_function_configuration(FunctionName="resupd")
    assert conf["Environment"] == {"Variables": {"KEEP": "me"}}


def test_unzipped_size_over_250mb_is_refused(server, lam):
    code = zip_of_zeros(260 * 1024 * 1024)
    assert len(code) < 5 * 1024 * 1024
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as e:
        create(lam, "bomb", code)
    assert "Unzipped size" in message_of(e.value)
    assert_absent(server, lam, "bomb", code)


def test_zip_over_50mb_is_request_too_large(server, lam):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("bootstrap", "#!/bin/sh\n")
        zf.writestr("blob.bin", os.urandom(50 * 1024 * 1024 + 4096))
    code = buf.getvalue()
    assert len(code) > 52428800
    with pytest.raises(lam.exceptions.RequestTooLargeException) as e:
        create(lam, "huge", code)
    assert status_of(e.value) == 413
    assert_absent(server, lam, "huge", code)
    # The server is still fine afterwards.
    assert create(lam, "small")["ResponseMetadata"]["HTTPStatusCode"] == 201


def _raw_create(server, body: bytes):
    return signed_call("POST", server.url + "/2015-03-31/functions",
                       access_key=server.credentials["aws_access_key_id"],
                       secret_key=server.credentials["aws_secret_access_key"],
                       body=body, headers={"Content-Type": "application/json"})


@pytest.mark.parametrize("body", [
    b'{"FunctionName": "broken", "Runtime": ',
    b"this is not json",
    b'["FunctionName", "broken"]',
    b'{"FunctionName": "broken", "Runtime": "provided.al2023", "Role": "arn:aws:iam::000000000000:role/x",'
    b' "Handler": "bootstrap", "Code": {"ZipFile": "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="}, "MemorySize": "lots"}',
], ids=["truncated", "text", "array", "wrong-type"])
def test_malformed_json_is_invalid_request_content(server, lam, body):
    resp = _raw_create(server, body)
    assert resp.status == 400, (resp.status, resp.body)
    assert resp.error_type == "InvalidRequestContentException", (resp.headers, resp.body)
    assert resp.json()  # still a JSON error document
    assert_absent(server, lam, "broken")


def test_raw_create_then_boto3_sees_it(server, lam):
    import base64
    code = make_zip(seed="raw")
    body = json.dumps({"FunctionName": "raw", "Runtime": RUNTIME, "Role": ROLE,
                       "Handler": "bootstrap",
                       "Code": {"ZipFile": base64.b64encode(code).decode()}}).encode()
    resp = _raw_create(server, body)
    assert resp.status == 201, resp.body
    assert resp.json()["CodeSha256"] == sha256_b64(code)
    assert lam.get_function(FunctionName="raw")["Configuration"]["CodeSize"] == len(code)


# --- boundaries, races, hostile packages --------------------------------------------------


def test_boundary_values_are_accepted(lam):
    name = "b" * 64
    resp = create(lam, name, MemorySize=10240, Timeout=900, EphemeralStorage={"Size": 10240})
    assert resp["FunctionName"] == name
    assert (resp["MemorySize"], resp["Timeout"], resp["EphemeralStorage"]) == (10240, 900, {"Size": 10240})
    resp = create(lam, "low", MemorySize=128, Timeout=1, EphemeralStorage={"Size": 512})
    assert (resp["MemorySize"], resp["Timeout"]) == (128, 1)


def test_unicode_round_trips(lam):
    desc = "café ☁ — 雲"
    create(lam, "uni", Description=desc, Tags={"owner": "zoë"},
           Environment={"Variables": {"GREETING": "héllo wörld ✓"}})
    got = lam.get_function(FunctionName="uni")
    assert got["Configuration"]["Description"] == desc
    assert got["Configuration"]["Environment"]["Variables"]["GREETING"] == "héllo wörld ✓"
    assert got["Tags"] == {"owner": "zoë"}


def test_recreate_after_delete_serves_the_new_code(lam):
    first, second = make_zip(seed="again-1"), make_zip(seed="again-2")
    create_active(lam, "again", first, MemorySize=512, Tags={"gen": "1"})
    lam.delete_function(FunctionName="again")
    create_active(lam, "again", second)
    got = lam.get_function(FunctionName="again")
    assert got["Configuration"]["CodeSha256"] == sha256_b64(second)
    assert got["Configuration"]["MemorySize"] == 128
    assert got.get("Tags", {}) == {}
    assert download(got["Code"]["Location"]) == second


def test_concurrent_creates_of_one_name_have_one_winner(server):
    import concurrent.futures
    clients = [server.client() for _ in range(8)]

    def attempt(i):
        try:
            create(clients[i], "race", make_zip(seed=f"race-{i}"))
            return ("ok", i)
        except clients[i].exceptions.ResourceConflictException:
            return ("conflict", i)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(attempt, range(8)))
    winners = [i for r, i in results if r == "ok"]
    assert len(winners) == 1, results
    assert [r for r, _ in results].count("conflict") == 7
    lam = clients[0]
    conf = lam.get_function_configuration(FunctionName="race")
    assert conf["CodeSha256"] == sha256_b64(make_zip(seed=f"race-{winners[0]}"))
    assert list_names(lam) == ["race"]


def test_concurrent_updates_with_one_revision_have_one_winner(server):
    import concurrent.futures
    lam = server.client()
    create_active(lam, "revrace")
    # The revision after activation (Pending -> Active may change it, as on AWS).
    rev = lam.get_function_configuration(FunctionName="revrace")["RevisionId"]
    clients = [server.client() for _ in range(6)]

    def attempt(i):
        try:
            clients[i].update_function_configuration(FunctionName="revrace", Timeout=10 + i,
                                                     RevisionId=rev)
            return ("ok", i)
        except clients[i].exceptions.PreconditionFailedException:
            return ("stale", i)
        except clients[i].exceptions.ResourceConflictException:
            return ("conflict", i)

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        results = list(pool.map(attempt, range(6)))
    winners = [i for r, i in results if r == "ok"]
    assert len(winners) == 1, results
    assert lam.get_function_configuration(FunctionName="revrace")["Timeout"] == 10 + winners[0]


def _settled_state(lam, name):
    import time
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        conf = lam.get_function_configuration(FunctionName=name)
        if conf["State"] != "Pending":
            return conf
        time.sleep(0.05)
    raise AssertionError(f"{name} stayed Pending")


def test_zip_entries_cannot_escape_the_code_directory(server, lam, tmp_path):
    import uuid
    tag = uuid.uuid4().hex
    outside_dir = tmp_path / f"outside-{tag}"
    outside_dir.mkdir()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("bootstrap", "#!/bin/sh\n")
        zf.writestr(f"../../../../../../../../..{tmp_path}/dotdot-{tag}", "escaped")
        zf.writestr(f"{tmp_path}/absolute-{tag}", "escaped")
        link = zipfile.ZipInfo("link")
        link.external_attr = (0o120777 << 16)
        zf.writestr(link, str(outside_dir))
        zf.writestr("link/through-symlink", "escaped")
    code = buf.getvalue()
    try:
        create(lam, "escape", code)
    except lam.exceptions.InvalidParameterValueException:
        assert_absent(server, lam, "escape", code)
    else:
        _settled_state(lam, "escape")
    assert not (tmp_path / f"dotdot-{tag}").exists()
    assert not (tmp_path / f"absolute-{tag}").exists()
    assert list(outside_dir.iterdir()) == []
    # The server is unharmed.
    assert create(lam, "after-escape")["ResponseMetadata"]["HTTPStatusCode"] == 201


def test_response_metadata_and_unknown_routes(server, lam):
    resp = lam.list_functions()
    assert resp["ResponseMetadata"]["RequestId"]
    assert resp["ResponseMetadata"]["HTTPHeaders"]["content-type"].startswith("application/json")
    ak = server.credentials["aws_access_key_id"]
    sk = server.credentials["aws_secret_access_key"]
    for method, path in (("GET", "/2015-03-31/nothing-here"), ("PATCH", "/2015-03-31/functions/x"),
                         ("GET", "/2099-01-01/functions/"), ("POST", "/")):
        r = signed_call(method, server.url + path, access_key=ak, secret_key=sk)
        assert 400 <= r.status < 500, (method, path, r.status, r.body)
        assert r.error_type, (method, path, r.headers)
