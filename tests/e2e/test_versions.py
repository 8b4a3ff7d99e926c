"""Versions and aliases, end to end with boto3: PublishVersion, ListVersionsByFunction, the
alias operations, qualifier resolution in GetFunction, and Invoke by version and by alias
(weighted routing included) with real execution environments."""

from __future__ import annotations

import urllib.request

import botocore.exceptions
import pytest

from helpers import (DEFAULT_ACCOUNT, FAST_WAIT, ROLE, RUNTIME, create_function, ensure_role,
                     invoke, make_zip)

REGION = "us-east-1"


def arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{DEFAULT_ACCOUNT}:function:{name}"


def status_of(err: botocore.exceptions.ClientError) -> int:
    return err.response["ResponseMetadata"]["HTTPStatusCode"]


def message_of(err: botocore.exceptions.ClientError) -> str:
    return err.response["Error"].get("Message", "")


def create(lam, name: str, seed: str = "a") -> bytes:
    code = make_zip(seed=f"{name}-{seed}")
    lam.create_function(FunctionName=name, Runtime=RUNTIME, Role=ROLE, Handler="bootstrap",
                        Code={"ZipFile": code})
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig=FAST_WAIT)
    return code


def wait_updated(lam, name: str):
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig=FAST_WAIT)


def set_description(lam, name: str, text: str):
    lam.update_function_configuration(FunctionName=name, Description=text)
    wait_updated(lam, name)


def set_code(lam, name: str, code: bytes):
    lam.update_function_code(FunctionName=name, ZipFile=code)
    wait_updated(lam, name)


def versions(lam, name: str, **kw) -> list[str]:
    return [v["Version"] for v in lam.list_versions_by_function(FunctionName=name, **kw)["Versions"]]


def alias_names(lam, name: str, **kw) -> list[str]:
    out = []
    for page in lam.get_paginator("list_aliases").paginate(FunctionName=name, **kw):
        out += [a["Name"] for a in page["Aliases"]]
    return out


def download(location: str) -> bytes:
    with urllib.request.urlopen(location, timeout=30) as r:
        return r.read()


# --- PublishVersion / ListVersionsByFunction --------------------------------------------------


def test_publish_numbers_versions_and_returns_the_unchanged_one(lam):
    create(lam, "pub")
    v1 = lam.publish_version(FunctionName="pub", Description="first release")
    assert v1["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert v1["Version"] == "1"
    assert v1["FunctionArn"] == arn("pub:1")
    assert v1["Description"] == "first release"
    assert v1["State"] == "Active"
    # Nothing changed since version 1: the same version comes back, nothing new is made.
    again = lam.publish_version(FunctionName="pub")
    assert again["Version"] == "1"
    assert again["RevisionId"] == v1["RevisionId"]
    assert versions(lam, "pub") == ["$LATEST", "1"]

    set_description(lam, "pub", "changed")
    assert lam.publish_version(FunctionName="pub")["Version"] == "2"
    # Numbers are never reused, even after the highest version is deleted.
    lam.delete_function(FunctionName="pub", Qualifier="2")
    assert lam.publish_version(FunctionName="pub")["Version"] == "3"
    assert versions(lam, "pub") == ["$LATEST", "1", "3"]
    # A version is a snapshot; $LATEST moves on alone.
    set_description(lam, "pub", "later")
    assert lam.get_function_configuration(FunctionName="pub", Qualifier="1")["Description"] == \
        "first release"
    assert lam.get_function_configuration(FunctionName="pub:3")["Description"] == "changed"


def test_list_versions_pages_with_latest_first(lam):
    create(lam, "pages")
    for i in range(4):
        lam.publish_version(FunctionName="pages")
        set_description(lam, "pages", f"d{i}")
    listed = lam.list_versions_by_function(FunctionName="pages")
    assert [v["Version"] for v in listed["Versions"]] == ["$LATEST", "1", "2", "3", "4"]
    assert listed["Versions"][0]["FunctionArn"] == arn("pages:$LATEST")
    assert listed["Versions"][2]["FunctionArn"] == arn("pages:2")
    assert "NextMarker" not in listed

    seen, marker, pages = [], None, 0
    while True:
        kw = {"Marker": marker} if marker else {}
        page = lam.list_versions_by_function(FunctionName="pages", MaxItems=2, **kw)
        pages += 1
        assert len(page["Versions"]) <= 2
        seen += [v["Version"] for v in page["Versions"]]
        marker = page.get("NextMarker")
        if not marker:
            break
    assert seen == ["$LATEST", "1", "2", "3", "4"]
    assert pages == 3
    # boto3's paginator speaks the same protocol.
    paged = [v["Version"] for p in lam.get_paginator("list_versions_by_function")
             .paginate(FunctionName="pages", PaginationConfig={"PageSize": 1}) for v in p["Versions"]]
    assert paged == seen

    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.list_versions_by_function(FunctionName="nope")


def test_publish_preconditions(lam):
    create(lam, "pre")
    latest = lam.get_function_configuration(FunctionName="pre")
    with pytest.raises(lam.exceptions.PreconditionFailedException) as e:
        lam.publish_version(FunctionName="pre", RevisionId="0" * 36)
    assert status_of(e.value) == 412
    # AWS answers a CodeSha256 mismatch with 400 InvalidParameterValueException.
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as e:
        lam.publish_version(FunctionName="pre", CodeSha256="A" * 43 + "=")
    assert status_of(e.value) == 400
    assert "is different from current CodeSHA256 in $LATEST" in message_of(e.value)
    assert versions(lam, "pre") == ["$LATEST"], "a refused publish made a version"

    v = lam.publish_version(FunctionName="pre", CodeSha256=latest["CodeSha256"],
                            RevisionId=latest["RevisionId"])
    assert v["Version"] == "1"
    assert v["CodeSha256"] == latest["CodeSha256"]
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as e:
        lam.publish_version(FunctionName="nope")
    assert status_of(e.value) == 404


# --- Aliases ----------------------------------------------------------------------------------


def two_versions(lam, name: str):
    create(lam, name)
    lam.publish_version(FunctionName=name)
    set_description(lam, name, "second")
    lam.publish_version(FunctionName=name)


def test_alias_crud(lam):
    two_versions(lam, "al")
    created = lam.create_alias(FunctionName="al", Name="live", FunctionVersion="1",
                               Description="production")
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert created["AliasArn"] == arn("al:live")
    assert (created["Name"], created["FunctionVersion"], created["Description"]) == \
        ("live", "1", "production")
    assert "RoutingConfig" not in created
    got = lam.get_alias(FunctionName=arn("al"), Name="live")
    assert {k: got[k] for k in ("AliasArn", "Name", "FunctionVersion", "Description", "RevisionId")} == \
        {k: created[k] for k in ("AliasArn", "Name", "FunctionVersion", "Description", "RevisionId")}

    with pytest.raises(lam.exceptions.ResourceConflictException) as e:
        lam.create_alias(FunctionName="al", Name="live", FunctionVersion="2")
    assert status_of(e.value) == 409
    assert message_of(e.value) == f"Alias already exists: {arn('al:live')}"

    with pytest.raises(lam.exceptions.PreconditionFailedException):
        lam.update_alias(FunctionName="al", Name="live", FunctionVersion="2", RevisionId="stale")
    updated = lam.update_alias(FunctionName="al", Name="live", FunctionVersion="2",
                               RevisionId=created["RevisionId"],
                               RoutingConfig={"AdditionalVersionWeights": {"1": 0.25}})
    assert updated["FunctionVersion"] == "2"
    assert updated["Description"] == "production"
    assert updated["RoutingConfig"] == {"AdditionalVersionWeights": {"1": 0.25}}
    assert updated["RevisionId"] != created["RevisionId"]
    cleared = lam.update_alias(FunctionName="al", Name="live",
                               RoutingConfig={"AdditionalVersionWeights": {}})
    assert "RoutingConfig" not in cleared

    lam.create_alias(FunctionName="al", Name="dev", FunctionVersion="$LATEST")
    for i in range(3):
        lam.create_alias(FunctionName="al", Name=f"old-{i}", FunctionVersion="1")
    assert alias_names(lam, "al") == ["dev", "live", "old-0", "old-1", "old-2"]
    assert alias_names(lam, "al", PaginationConfig={"PageSize": 2}) == \
        ["dev", "live", "old-0", "old-1", "old-2"]
    first = lam.list_aliases(FunctionName="al", MaxItems=2)
    assert [a["Name"] for a in first["Aliases"]] == ["dev", "live"]
    assert first["NextMarker"]
    assert alias_names(lam, "al", FunctionVersion="1") == ["old-0", "old-1", "old-2"]
    assert alias_names(lam, "al", FunctionVersion="$LATEST") == ["dev"]

    resp = lam.delete_alias(FunctionName="al", Name="old-0")
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    # Deleting an alias that is not there succeeds, as on AWS.
    assert lam.delete_alias(FunctionName="al", Name="old-0")["ResponseMetadata"][
        "HTTPStatusCode"] == 204
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as e:
        lam.get_alias(FunctionName="al", Name="old-0")
    assert message_of(e.value) == f"Cannot find alias arn: {arn('al:old-0')}"
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as e:
        lam.update_alias(FunctionName="al", Name="old-0", FunctionVersion="1")
    assert message_of(e.value) == f"Alias not found: {arn('al:old-0')}"


def test_alias_errors(server, lam):
    two_versions(lam, "ae")
    other = ensure_role(server.client("iam"), "stratus-e2e-other")
    lam.update_function_configuration(FunctionName="ae", Role=other)
    wait_updated(lam, "ae")
    assert lam.publish_version(FunctionName="ae")["Version"] == "3"

    def refused(exc, **kw):
        params = {"FunctionName": "ae", "Name": "a", "FunctionVersion": "1", **kw}
        with pytest.raises(exc) as e:
            lam.create_alias(**params)
        return e.value

    def weights(w):
        return {"RoutingConfig": {"AdditionalVersionWeights": w}}

    e = refused(lam.exceptions.ResourceNotFoundException, FunctionVersion="9")
    assert message_of(e) == f"Function not found: {arn('ae:9')}"
    refused(lam.exceptions.ResourceNotFoundException, FunctionName="nope")
    assert status_of(refused(botocore.exceptions.ClientError, Name="123")) == 400
    assert refused(botocore.exceptions.ClientError, Name="123").response["Error"]["Code"] == \
        "ValidationException"
    assert refused(botocore.exceptions.ClientError, FunctionVersion="live").response["Error"][
        "Code"] == "ValidationException"
    # Routing: one extra published version with weight in [0, 1), not $LATEST, same role.
    refused(lam.exceptions.InvalidParameterValueException, **weights({"1": 0.5}))
    refused(lam.exceptions.InvalidParameterValueException, **weights({"2": 0.1, "3": 0.1}))
    refused(lam.exceptions.InvalidParameterValueException, FunctionVersion="$LATEST",
            **weights({"1": 0.5}))
    refused(lam.exceptions.InvalidParameterValueException, **weights({"3": 0.5}))
    refused(lam.exceptions.ResourceNotFoundException, **weights({"8": 0.5}))
    for w in (1.0, 1.5):
        e = refused(botocore.exceptions.ClientError, **weights({"2": w}))
        assert e.response["Error"]["Code"] == "ValidationException"
    assert alias_names(lam, "ae") == [], "a refused alias was stored"

    ok = lam.create_alias(FunctionName="ae", Name="a", FunctionVersion="1", **weights({"2": 0.0}))
    assert ok["RoutingConfig"] == {"AdditionalVersionWeights": {"2": 0.0}}
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_alias(FunctionName="nope", Name="a")


def test_get_function_by_alias(lam):
    create(lam, "ga", seed="one")
    lam.publish_version(FunctionName="ga")
    v1_code = download(lam.get_function(FunctionName="ga", Qualifier="1")["Code"]["Location"])
    set_code(lam, "ga", make_zip(seed="ga-two"))
    lam.create_alias(FunctionName="ga", Name="live", FunctionVersion="1")

    got = lam.get_function(FunctionName="ga", Qualifier="live")
    assert got["Configuration"]["Version"] == "1"
    assert got["Configuration"]["FunctionArn"] == arn("ga:live")
    assert download(got["Code"]["Location"]) == v1_code
    for name in ("ga:live", arn("ga:live")):
        conf = lam.get_function_configuration(FunctionName=name)
        assert (conf["Version"], conf["FunctionArn"]) == ("1", arn("ga:live"))
    latest = lam.get_function(FunctionName="ga")["Configuration"]
    assert latest["CodeSha256"] != got["Configuration"]["CodeSha256"]
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as e:
        lam.get_function(FunctionName="ga", Qualifier="missing")
    assert message_of(e.value) == f"Function not found: {arn('ga:missing')}"


def test_versions_in_use_cannot_be_deleted(lam):
    two_versions(lam, "inuse")
    lam.create_alias(FunctionName="inuse", Name="live", FunctionVersion="1",
                     RoutingConfig={"AdditionalVersionWeights": {"2": 0.1}})
    for v in ("1", "2"):
        with pytest.raises(lam.exceptions.ResourceConflictException) as e:
            lam.delete_function(FunctionName="inuse", Qualifier=v)
        assert status_of(e.value) == 409
        assert message_of(e.value) == \
            "Unable to delete version because the following aliases reference it: [live]"
    assert versions(lam, "inuse") == ["$LATEST", "1", "2"]
    lam.update_alias(FunctionName="inuse", Name="live", RoutingConfig={"AdditionalVersionWeights": {}})
    lam.delete_function(FunctionName="inuse", Qualifier="2")
    assert versions(lam, "inuse") == ["$LATEST", "1"]


def test_deleting_the_function_removes_versions_and_aliases(server, lam):
    two_versions(lam, "gone")
    lam.create_alias(FunctionName="gone", Name="live", FunctionVersion="1")
    lam.create_alias(FunctionName="gone", Name="dev", FunctionVersion="$LATEST")
    assert lam.delete_function(FunctionName="gone")["ResponseMetadata"]["HTTPStatusCode"] == 204
    for call in (lambda: lam.get_alias(FunctionName="gone", Name="live"),
                 lambda: lam.get_function(FunctionName="gone", Qualifier="1"),
                 lambda: lam.list_versions_by_function(FunctionName="gone"),
                 lambda: lam.list_aliases(FunctionName="gone")):
        with pytest.raises(lam.exceptions.ResourceNotFoundException):
            call()
    # A new function of that name starts from nothing, and that survives a restart.
    create(lam, "gone", seed="again")
    server.restart()
    lam = server.client("lambda")
    assert versions(lam, "gone") == ["$LATEST"]
    assert alias_names(lam, "gone") == []
    assert lam.publish_version(FunctionName="gone")["Version"] == "1"


# --- Invoke by version and by alias -----------------------------------------------------------

HANDLER = """
import os
VALUE = {value!r}
def handler(event, context):
    return {{"value": VALUE,
             "version": os.environ.get("AWS_LAMBDA_FUNCTION_VERSION"),
             "arn": context.invoked_function_arn}}
"""


def code_for(value: str) -> dict:
    return {"app.py": HANDLER.format(value=value)}


def versioned_python_function(lam, name: str):
    """Version 1 returns "one", version 2 "two", $LATEST "three"."""
    create_function(lam, name, code_for("one"), runtime="python3.11", handler="app.handler")
    assert lam.publish_version(FunctionName=name)["Version"] == "1"
    lam.update_function_code(FunctionName=name, ZipFile=make_zip(code_for("two")))
    wait_updated(lam, name)
    assert lam.publish_version(FunctionName=name)["Version"] == "2"
    lam.update_function_code(FunctionName=name, ZipFile=make_zip(code_for("three")))
    wait_updated(lam, name)


def test_invoke_by_version_and_alias(exec_lam):
    lam = exec_lam
    versioned_python_function(lam, "ver")
    cases = [
        ({"FunctionName": "ver:1"}, "one", "1", arn("ver:1")),
        ({"FunctionName": "ver", "Qualifier": "2"}, "two", "2", arn("ver:2")),
        ({"FunctionName": "ver"}, "three", "$LATEST", arn("ver")),
        ({"FunctionName": "ver", "Qualifier": "$LATEST"}, "three", "$LATEST", arn("ver:$LATEST")),
    ]
    lam.create_alias(FunctionName="ver", Name="live", FunctionVersion="1")
    cases += [
        ({"FunctionName": "ver", "Qualifier": "live"}, "one", "1", arn("ver:live")),
        ({"FunctionName": arn("ver:live")}, "one", "1", arn("ver:live")),
    ]
    for kw, value, version, invoked_arn in cases:
        name = kw.pop("FunctionName")
        r = invoke(lam, name, **kw)
        assert r.status == 200, (name, kw, r.raw)
        assert r.executed_version == version, (name, kw)
        assert r.payload == {"value": value, "version": version, "arn": invoked_arn}, (name, kw)

    lam.update_alias(FunctionName="ver", Name="live", FunctionVersion="2")
    r = invoke(lam, "ver", Qualifier="live")
    assert (r.executed_version, r.payload["value"]) == ("2", "two")

    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        invoke(lam, "ver", Qualifier="missing")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        invoke(lam, "ver", Qualifier="7")


def test_weighted_alias_splits_traffic(exec_lam):
    lam = exec_lam
    versioned_python_function(lam, "canary")
    lam.create_alias(FunctionName="canary", Name="live", FunctionVersion="1",
                     RoutingConfig={"AdditionalVersionWeights": {"2": 0.3}})
    n = 200
    counts = {"1": 0, "2": 0}
    expected = {"1": "one", "2": "two"}
    for _ in range(n):
        r = invoke(lam, "canary", Qualifier="live")
        assert r.status == 200, r.raw
        counts[r.executed_version] += 1
        # The version named in the header is the one that ran.
        assert r.payload["value"] == expected[r.executed_version]
        assert r.payload["version"] == r.executed_version
        assert r.payload["arn"] == arn("canary:live")
    # Binomial(200, 0.3): mean 60, standard deviation about 6.5; [30, 90] is over 4.5σ.
    assert 30 <= counts["2"] <= 90, counts
    assert counts["1"] + counts["2"] == n


def test_deleted_function_cannot_be_invoked_by_alias(exec_lam):
    lam = exec_lam
    create_function(lam, "short", code_for("x"), runtime="python3.11", handler="app.handler")
    lam.publish_version(FunctionName="short")
    lam.create_alias(FunctionName="short", Name="live", FunctionVersion="1")
    assert invoke(lam, "short", Qualifier="live").payload["value"] == "x"
    lam.delete_function(FunctionName="short")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        invoke(lam, "short", Qualifier="live")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        invoke(lam, "short", Qualifier="1")
