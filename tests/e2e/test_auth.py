"""SigV4 authentication at the front door: every AWS API call must be signed by a known key."""

from __future__ import annotations

import datetime
import json
import urllib.parse

import botocore.exceptions
import pytest

from helpers import http_request, make_zip, presign, send, sign_request, signed_call, utcnow

LIST_PATH = "/2015-03-31/functions/"

AUTH_ERRORS = {
    "MissingAuthenticationTokenException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "IncompleteSignatureException",
}


def keys(server):
    return server.credentials["aws_access_key_id"], server.credentials["aws_secret_access_key"]


def assert_refused(resp, error_type):
    assert resp.status == 403, (resp.status, resp.headers, resp.body)
    assert resp.error_type == error_type, (resp.headers, resp.body)
    # The body is JSON too, and never reveals a listing.
    doc = resp.json()
    assert "Functions" not in doc


def test_health_needs_no_auth(server):
    resp = http_request("GET", server.url + "/_stratus/health")
    assert resp.status == 200
    doc = resp.json()
    assert doc["status"] == "ready"
    assert isinstance(doc["services"], dict) and doc["services"]


def test_boto3_call_works(lam):
    resp = lam.list_functions()
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert resp["Functions"] == []


def test_properly_signed_raw_request_works(server):
    ak, sk = keys(server)
    resp = signed_call("GET", server.url + LIST_PATH, access_key=ak, secret_key=sk)
    assert resp.status == 200, resp.body
    assert resp.json()["Functions"] == []


def test_missing_authentication(server):
    resp = http_request("GET", server.url + LIST_PATH)
    assert_refused(resp, "MissingAuthenticationTokenException")


def test_missing_authentication_on_create(server):
    body = json.dumps({"FunctionName": "sneaky", "Runtime": "provided.al2023",
                       "Role": "arn:aws:iam::000000000000:role/stratus-e2e", "Handler": "bootstrap",
                       "Code": {"ZipFile": "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="}}).encode()
    resp = http_request("POST", server.url + "/2015-03-31/functions",
                        {"Content-Type": "application/json"}, body)
    assert_refused(resp, "MissingAuthenticationTokenException")


def test_unknown_access_key(server):
    _, sk = keys(server)
    resp = signed_call("GET", server.url + LIST_PATH, access_key="AKIAUNKNOWNKEY000000", secret_key=sk)
    assert_refused(resp, "UnrecognizedClientException")


def test_unknown_access_key_with_boto3(server):
    client = server.client(access_key="AKIAUNKNOWNKEY000000", secret_key="x" * 40)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        client.list_functions()
    assert e.value.response["Error"]["Code"] == "UnrecognizedClientException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_wrong_secret(server):
    ak, sk = keys(server)
    resp = signed_call("GET", server.url + LIST_PATH, access_key=ak, secret_key=sk[:-1] + ("A" if sk[-1] != "A" else "B"))
    assert_refused(resp, "InvalidSignatureException")


def test_wrong_secret_with_boto3(server):
    ak, _ = keys(server)
    client = server.client(access_key=ak, secret_key="wrong" * 8)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        client.list_functions()
    assert e.value.response["Error"]["Code"] == "InvalidSignatureException"


def test_tampered_query(server):
    ak, sk = keys(server)
    req = sign_request("GET", server.url + LIST_PATH + "?MaxItems=5", access_key=ak, secret_key=sk)
    req.url = req.url.replace("MaxItems=5", "MaxItems=6")
    assert_refused(send(req), "InvalidSignatureException")


def test_tampered_path(server):
    ak, sk = keys(server)
    req = sign_request("GET", server.url + "/2015-03-31/functions/aaa", access_key=ak, secret_key=sk)
    req.url = req.url.replace("/functions/aaa", "/functions/bbb")
    assert_refused(send(req), "InvalidSignatureException")


def test_tampered_body(server):
    ak, sk = keys(server)
    body = json.dumps({"Description": "aaa"}).encode()
    req = sign_request("PUT", server.url + "/2015-03-31/functions/x/configuration",
                       access_key=ak, secret_key=sk, body=body,
                       headers={"Content-Type": "application/json"})
    tampered = json.dumps({"Description": "bbb"}).encode()
    assert len(tampered) == len(body)
    assert_refused(send(req, body=tampered), "InvalidSignatureException")


def test_large_bodies_are_verified_too(server):
    """Bodies over 256 KiB are hashed on another thread: a tampered one is still refused, an
    intact one (a code upload) accepted."""
    import base64
    import os
    ak, sk = keys(server)
    # Incompressible, so the zip (and its base64) stays well over 256 KiB.
    code = make_zip({"bootstrap": "#!/bin/sh\n", "pad.bin": os.urandom(400 * 1024)})
    doc = {"FunctionName": "large-body", "Runtime": "provided.al2023", "Handler": "x",
           "Role": "arn:aws:iam::000000000000:role/stratus-e2e",
           "Code": {"ZipFile": base64.b64encode(code).decode()}}
    body = json.dumps(doc).encode()
    assert len(body) > 512 * 1024
    req = sign_request("POST", server.url + "/2015-03-31/functions", access_key=ak,
                       secret_key=sk, body=body, headers={"Content-Type": "application/json"})
    tampered = body.replace(b'"large-body"', b'"large-bodx"')
    assert_refused(send(req, body=tampered), "InvalidSignatureException")
    resp = send(req)
    assert resp.status == 201, (resp.status, resp.body[:500])
    assert resp.json()["FunctionName"] == "large-body"


def test_tampered_signed_header(server):
    ak, sk = keys(server)
    req = sign_request("GET", server.url + LIST_PATH, access_key=ak, secret_key=sk,
                       headers={"X-Custom-Thing": "one"})
    assert "x-custom-thing" in req.headers["Authorization"]
    req.headers.replace_header("X-Custom-Thing", "two")
    assert_refused(send(req), "InvalidSignatureException")


@pytest.mark.parametrize("offset_minutes", [-20, 20, -60 * 24])
def test_clock_skew_over_15_minutes_is_refused(server, offset_minutes):
    ak, sk = keys(server)
    when = utcnow() + datetime.timedelta(minutes=offset_minutes)
    resp = signed_call("GET", server.url + LIST_PATH, access_key=ak, secret_key=sk, when=when)
    assert_refused(resp, "InvalidSignatureException")
    # AWS's wording: "Signature expired: ..." for the past, "Signature not yet current: ..."
    # for the future.
    expected = "Signature expired" if offset_minutes < 0 else "Signature not yet current"
    assert expected in resp.message, resp.message


def test_clock_skew_within_15_minutes_is_accepted(server):
    ak, sk = keys(server)
    for minutes in (-10, 10):
        when = utcnow() + datetime.timedelta(minutes=minutes)
        resp = signed_call("GET", server.url + LIST_PATH, access_key=ak, secret_key=sk, when=when)
        assert resp.status == 200, (minutes, resp.headers, resp.body)


def _valid_parts(server):
    """A correctly signed request's headers, for building malformed variants."""
    ak, sk = keys(server)
    req = sign_request("GET", server.url + LIST_PATH, access_key=ak, secret_key=sk)
    auth = req.headers["Authorization"]
    algo, rest = auth.split(" ", 1)
    params = dict(p.strip().split("=", 1) for p in rest.split(","))
    return req, algo, params


@pytest.mark.parametrize("variant", [
    "no-credential", "no-signed-headers", "no-signature", "short-scope", "no-separators",
    "algorithm-only",
])
def test_malformed_authorization_header(server, variant):
    req, algo, p = _valid_parts(server)
    cred, sh, sig = p["Credential"], p["SignedHeaders"], p["Signature"]
    header = {
        "no-credential": f"{algo} SignedHeaders={sh}, Signature={sig}",
        "no-signed-headers": f"{algo} Credential={cred}, Signature={sig}",
        "no-signature": f"{algo} Credential={cred}, SignedHeaders={sh}",
        "short-scope": f"{algo} Credential={cred.rsplit('/', 2)[0]}, SignedHeaders={sh}, Signature={sig}",
        "no-separators": f"{algo} Credential={cred} SignedHeaders={sh} Signature={sig}",
        "algorithm-only": algo,
    }[variant]
    req.headers.replace_header("Authorization", header)
    assert_refused(send(req), "IncompleteSignatureException")


@pytest.mark.parametrize("header", [
    "", "garbage", "AWS4-HMAC-SHA256 ====,,,", "AWS4-HMAC-SHA256 Credential=/////, SignedHeaders=, Signature=",
    "AWS4-HMAC-SHA256 Credential=\u00e9\u00e9/x, SignedHeaders=host, Signature=zz",
    "Bearer abc.def.ghi", "AWS4-HMAC-SHA256 " + "Credential=a," * 2000,
])
def test_garbage_authorization_is_a_403_never_a_500(server, header):
    ak, sk = keys(server)
    req = sign_request("GET", server.url + LIST_PATH, access_key=ak, secret_key=sk)
    req.headers.replace_header("Authorization", header.encode("utf-8").decode("latin-1"))
    resp = send(req)
    assert resp.status == 403, (resp.status, resp.body)
    assert resp.error_type in AUTH_ERRORS, resp.headers


def test_presigned_list_functions_works(server, lam):
    lam.create_function(FunctionName="visible", Runtime="provided.al2023",
                        Role="arn:aws:iam::000000000000:role/stratus-e2e", Handler="bootstrap",
                        Code={"ZipFile": make_zip()})
    ak, sk = keys(server)
    url = presign(server.url + LIST_PATH, access_key=ak, secret_key=sk, expires=60)
    assert "X-Amz-Signature=" in url
    resp = http_request("GET", url)
    assert resp.status == 200, (resp.headers, resp.body)
    assert [f["FunctionName"] for f in resp.json()["Functions"]] == ["visible"]


def test_presigned_url_with_query_parameters_works(server):
    ak, sk = keys(server)
    url = presign(server.url + LIST_PATH + "?MaxItems=1", access_key=ak, secret_key=sk, expires=60)
    resp = http_request("GET", url)
    assert resp.status == 200, (resp.headers, resp.body)
    assert resp.json()["Functions"] == []


def test_expired_presigned_url_fails(server):
    ak, sk = keys(server)
    when = utcnow() - datetime.timedelta(minutes=10)
    url = presign(server.url + LIST_PATH, access_key=ak, secret_key=sk, expires=60, when=when)
    resp = http_request("GET", url)
    assert resp.status == 403, (resp.status, resp.body)
    assert resp.error_type in AUTH_ERRORS, resp.headers
    assert "Functions" not in resp.json()


def test_presigned_url_with_wrong_secret_fails(server):
    ak, _ = keys(server)
    url = presign(server.url + LIST_PATH, access_key=ak, secret_key="not-the-secret", expires=60)
    resp = http_request("GET", url)
    assert resp.status == 403
    assert resp.error_type == "InvalidSignatureException", resp.headers


def test_presigned_url_tampered_query_fails(server):
    ak, sk = keys(server)
    url = presign(server.url + LIST_PATH + "?MaxItems=1", access_key=ak, secret_key=sk, expires=60)
    tampered = url.replace("MaxItems=1", "MaxItems=2")
    assert tampered != url
    resp = http_request("GET", tampered)
    assert resp.status == 403
    assert resp.error_type == "InvalidSignatureException", resp.headers


def test_presigned_url_signed_for_another_path_fails(server):
    ak, sk = keys(server)
    url = presign(server.url + LIST_PATH, access_key=ak, secret_key=sk, expires=60)
    parts = urllib.parse.urlsplit(url)
    other = urllib.parse.urlunsplit(parts._replace(path="/2015-03-31/functions/other"))
    resp = http_request("GET", other)
    assert resp.status == 403
    assert resp.error_type == "InvalidSignatureException", resp.headers
