"""The front door: one port for every service, routed by the SigV4 scope and X-Amz-Target,
refusing a scope for another service or region as AWS does, and not held by slow clients."""

from __future__ import annotations

import json
import socket
import time

import botocore.exceptions
import pytest

from helpers import ROLE, aws, http_request, make_zip, send, sign_request, wait_until

LIST_PATH = "/2015-03-31/functions/"


def keys(server):
    return server.credentials["aws_access_key_id"], server.credentials["aws_secret_access_key"]


def signed(server, method, path, *, service, region="us-east-1", body=b"", headers=None):
    ak, sk = keys(server)
    return send(sign_request(method, server.url + path, access_key=ak, secret_key=sk, body=body,
                             headers=headers, region=region, service=service))


def test_sts_get_caller_identity_with_boto3_and_the_cli(server, tmp_path):
    ident = server.client("sts").get_caller_identity()
    assert ident["Account"] == "000000000000"
    assert ident["Arn"] == "arn:aws:iam::000000000000:root"
    assert ident["UserId"] == "000000000000"
    out = aws(server, tmp_path, "sts", "get-caller-identity")
    assert json.loads(out.stdout)["Arn"] == "arn:aws:iam::000000000000:root"


def test_a_request_signed_for_another_service_is_refused(server):
    # Signed for Lambda, sent with Logs' target: AWS refuses the scope, not the operation.
    resp = signed(server, "POST", "/", service="lambda", body=b"{}",
                  headers={"X-Amz-Target": "Logs_20140328.DescribeLogGroups",
                           "Content-Type": "application/x-amz-json-1.1"})
    assert resp.status == 403, resp.body
    assert resp.error_type == "InvalidSignatureException"
    assert "Credential should be scoped to correct service: 'logs'" in resp.json()["message"]


def test_a_request_signed_for_another_region_is_refused(server):
    resp = signed(server, "GET", LIST_PATH, service="lambda", region="eu-west-1")
    assert resp.status == 403, resp.body
    assert resp.error_type == "InvalidSignatureException"
    assert "eu-west-1" in resp.json()["message"]


def test_a_service_stratus_does_not_offer_gets_a_4xx_naming_it(server):
    # Through the service's own client: the refusal comes in an envelope it can read.
    s3 = server.client("s3")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.list_buckets()
    err = e.value.response
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert err["Error"]["Code"] == "UnknownServiceException"
    assert '"s3"' in err["Error"]["Message"] and "lambda" in err["Error"]["Message"]
    sqs = server.client("sqs")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.list_queues()
    assert e.value.response["Error"]["Code"] == "UnknownServiceException"
    assert "AmazonSQS" in e.value.response["Error"]["Message"]


def test_lambda_errors_spell_their_members_as_the_model_does(server):
    resp = signed(server, "GET", "/2015-03-31/functions/nope", service="lambda")
    assert resp.status == 404
    doc = resp.json()
    # ResourceNotFoundException's member is `Message` in Lambda's model; the JavaScript SDK
    # reads err.Message.
    assert doc["Type"] == "User" and "Message" in doc and "message" not in doc, doc
    resp = signed(server, "GET", "/2015-03-31/functions/?MaxItems=x", service="lambda")
    assert resp.status == 400
    assert "message" in resp.json(), resp.body  # InvalidParameterValueException: `message`


def test_health_lists_every_service(server):
    doc = json.loads(http_request("GET", server.url + "/_stratus/health").body)
    assert {"lambda", "sts"} <= set(doc["services"]), doc


def test_reset_exists_only_in_test_mode(server_factory):
    plain = server_factory()
    resp = http_request("POST", plain.url + "/_stratus/reset")
    assert resp.status == 403, "without test mode the path is an ordinary, unsigned request"

    test = server_factory(args=["--test-mode"])
    lam = test.client()
    lam.create_function(FunctionName="f", Runtime="python3.11", Handler="index.handler",
                        Role=ROLE, Code={"ZipFile": make_zip({"index.py": "def handler(e, c): pass\n"})})
    assert len(lam.list_functions()["Functions"]) == 1
    assert http_request("POST", test.url + "/moto-api/reset").status == 200
    assert lam.list_functions()["Functions"] == []


def test_clients_that_never_finish_their_headers_are_closed(server_factory, tmp_path):
    cfg = tmp_path / "slow.toml"
    cfg.write_text("header_timeout = 2\nmax_connections = 64\n")
    server = server_factory(args=["--config", str(cfg)])
    host, port = server.url.removeprefix("http://").split(":")
    # More half-sent requests than the server takes connections at once.
    socks = []
    for _ in range(100):
        s = socket.create_connection((host, int(port)), timeout=10)
        s.sendall(b"GET /_stratus/health HTTP/1.1\r\nHost: x\r\n")  # never finished
        socks.append(s)

    def all_closed():
        for s in socks[:64]:
            s.settimeout(0.01)
            try:
                if s.recv(1) != b"":
                    return False
            except socket.timeout:
                return False
            except OSError:
                pass
        return True

    wait_until(all_closed, timeout=30, interval=0.2, what="stalled connections closed")
    # And the server still answers (the ones left in the backlog were taken and cut too).
    assert http_request("GET", server.url + "/_stratus/health").status == 200
    for s in socks:
        s.close()


def test_an_idle_keep_alive_connection_is_closed(server_factory, tmp_path):
    cfg = tmp_path / "idle.toml"
    cfg.write_text("header_timeout = 2\n")
    server = server_factory(args=["--config", str(cfg)])
    host, port = server.url.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(b"GET /_stratus/health HTTP/1.1\r\nHost: x\r\n\r\n")
    first = s.recv(65536)
    assert first.startswith(b"HTTP/1.1 200"), first
    t0 = time.monotonic()
    s.settimeout(20)
    rest = b""
    while True:  # the rest of the first response, then the close
        chunk = s.recv(65536)
        if not chunk:
            break
        rest += chunk
    assert time.monotonic() - t0 < 20
    s.close()
