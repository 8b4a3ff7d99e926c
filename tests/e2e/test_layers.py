"""Lambda layers, end to end with boto3: publishing, reading, listing and deleting layer
versions and their permissions; functions naming layers, which they find extracted in order
(later layers win) under a read-only /opt, on the paths Lambda's runtimes search: Python's
sys.path (also when the function starts in a zygote, an interpreter started before the
function was known) and Node's require()."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil

import botocore.exceptions
import pytest

from helpers import ROLE, create_function, invoke, make_zip, update_configuration, wait_until
from test_zygote import _zygote_ready

PY_HANDLER = '''
import os, sys

def handler(event, context):
    import shared, first_only
    try:
        with open("/opt/python/shared.py", "a") as f:
            f.write("# changed")
        write = "allowed"
    except OSError as e:
        write = type(e).__name__
    with open("/proc/self/environ", "rb") as f:
        zygote = b"_STRATUS_ZYGOTE_FD=" in f.read()
    return {
        "shared": shared.WHO,
        "first_only": first_only.WHO,
        "data": open("/opt/data.txt").read(),
        "write": write,
        "path": sys.path,
        "bin_on_path": "/opt/bin" in os.environ["PATH"].split(":"),
        "zygote": zygote,
    }
'''

SITE = "python/lib/python3.11/site-packages"


def _layer(lam, name, files, **kw):
    return lam.publish_layer_version(LayerName=name, Content={"ZipFile": make_zip(files)},
                                     **kw)


BASE = {"python/shared.py": "WHO = 'base'\n", "python/first_only.py": "WHO = 'base'\n",
        "data.txt": "from base"}
OVER = {f"{SITE}/shared.py": "WHO = 'over'\n", "python/shared.py": "WHO = 'over'\n",
        "data.txt": "from over"}


def _two_layer_zips() -> list[bytes]:
    return [make_zip(BASE), make_zip(OVER)]


def _two_layers(lam):
    """Two layers: `base` has shared.py and first_only.py; `over` has its own shared.py and
    data file, so listed after `base` it wins."""
    arns = []
    for name, z in zip(("base", "over"), _two_layer_zips()):
        v = lam.publish_layer_version(LayerName=name, Content={"ZipFile": z},
                                      CompatibleRuntimes=["python3.11"])
        arns.append(v["LayerVersionArn"])
    return arns[0], arns[1]


def test_publish_get_list_and_delete_layer_versions(lam):
    zip1 = make_zip({"python/m.py": "X = 1\n"})
    v1 = lam.publish_layer_version(
        LayerName="tools", Description="first", Content={"ZipFile": zip1},
        CompatibleRuntimes=["python3.11", "python3.12"], CompatibleArchitectures=["x86_64"],
        LicenseInfo="MIT")
    assert v1["Version"] == 1
    assert v1["LayerArn"] == "arn:aws:lambda:us-east-1:000000000000:layer:tools"
    assert v1["LayerVersionArn"] == v1["LayerArn"] + ":1"
    assert v1["Content"]["CodeSize"] == len(zip1)
    assert v1["CompatibleRuntimes"] == ["python3.11", "python3.12"]
    assert v1["LicenseInfo"] == "MIT"
    v2 = _layer(lam, "tools", {"python/m.py": "X = 2\n"}, CompatibleRuntimes=["nodejs20.x"])
    assert v2["Version"] == 2
    other = _layer(lam, "other", {"a": "b"}, CompatibleRuntimes=["python3.11"])

    got = lam.get_layer_version(LayerName="tools", VersionNumber=1)
    assert got["Description"] == "first"
    assert got["Content"]["CodeSha256"] == v1["Content"]["CodeSha256"]
    by_arn = lam.get_layer_version_by_arn(Arn=v2["LayerVersionArn"])
    assert by_arn["Version"] == 2 and by_arn["CompatibleRuntimes"] == ["nodejs20.x"]

    versions = lam.list_layer_versions(LayerName="tools")["LayerVersions"]
    assert [v["Version"] for v in versions] == [2, 1]
    py = lam.list_layer_versions(LayerName="tools", CompatibleRuntime="python3.11")
    assert [v["Version"] for v in py["LayerVersions"]] == [1]

    layers = {l["LayerName"]: l for l in lam.list_layers()["Layers"]}
    assert set(layers) == {"tools", "other"}
    assert layers["tools"]["LatestMatchingVersion"]["Version"] == 2
    # The latest version *matching* the filter: tools' v2 is Node-only.
    layers = {l["LayerName"]: l for l in lam.list_layers(CompatibleRuntime="python3.11")["Layers"]}
    assert layers["tools"]["LatestMatchingVersion"]["Version"] == 1
    assert layers["other"]["LatestMatchingVersion"]["LayerVersionArn"] == other["LayerVersionArn"]
    assert lam.list_layers(CompatibleRuntime="java21")["Layers"] == []

    lam.delete_layer_version(LayerName="tools", VersionNumber=2)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_layer_version(LayerName="tools", VersionNumber=2)
    lam.delete_layer_version(LayerName="tools", VersionNumber=2)  # idempotent, as on AWS
    # A deleted version's number is never handed out again.
    assert _layer(lam, "tools", {"x": "y"})["Version"] == 3
    assert [v["Version"] for v in
            lam.list_layer_versions(LayerName="tools")["LayerVersions"]] == [3, 1]
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_layer_version(LayerName="nope", VersionNumber=1)
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.publish_layer_version(LayerName="bad", Content={"ZipFile": b"not a zip"})


def test_layer_version_permissions(lam):
    v = _layer(lam, "shared", {"a": "b"})
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_layer_version_policy(LayerName="shared", VersionNumber=1)
    added = lam.add_layer_version_permission(
        LayerName="shared", VersionNumber=1, StatementId="everyone",
        Action="lambda:GetLayerVersion", Principal="*")
    statement = json.loads(added["Statement"])
    assert statement["Principal"] == "*"
    assert statement["Resource"] == v["LayerVersionArn"]
    lam.add_layer_version_permission(
        LayerName="shared", VersionNumber=1, StatementId="acct",
        Action="lambda:GetLayerVersion", Principal="111122223333")
    with pytest.raises(lam.exceptions.ResourceConflictException):
        lam.add_layer_version_permission(
            LayerName="shared", VersionNumber=1, StatementId="acct",
            Action="lambda:GetLayerVersion", Principal="111122223333")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lam.add_layer_version_permission(
            LayerName="shared", VersionNumber=1, StatementId="x",
            Action="lambda:InvokeFunction", Principal="*")
    assert e.value.response["Error"]["Code"] == "ValidationException"
    policy = lam.get_layer_version_policy(LayerName="shared", VersionNumber=1)
    doc = json.loads(policy["Policy"])
    assert [s["Sid"] for s in doc["Statement"]] == ["everyone", "acct"]
    assert doc["Statement"][1]["Principal"] == {"AWS": "arn:aws:iam::111122223333:root"}
    with pytest.raises(lam.exceptions.PreconditionFailedException):
        lam.remove_layer_version_permission(LayerName="shared", VersionNumber=1,
                                            StatementId="acct", RevisionId="stale")
    lam.remove_layer_version_permission(LayerName="shared", VersionNumber=1,
                                        StatementId="acct", RevisionId=policy["RevisionId"])
    doc = json.loads(lam.get_layer_version_policy(LayerName="shared", VersionNumber=1)["Policy"])
    assert [s["Sid"] for s in doc["Statement"]] == ["everyone"]


def test_functions_name_at_most_five_existing_layers(lam):
    arns = [_layer(lam, f"l{i}", {f"f{i}": "x"})["LayerVersionArn"] for i in range(6)]
    files = {"app.py": "def handler(e, c):\n    return 1\n"}
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as e:
        create_function(lam, "six", files, runtime="python3.11", handler="app.handler",
                        Layers=arns)
    assert "more than 5 layers" in str(e.value)
    missing = arns[0][:-1] + "9"
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as e:
        create_function(lam, "missing", files, runtime="python3.11", handler="app.handler",
                        Layers=[missing])
    assert "does not exist" in str(e.value)
    created = create_function(lam, "five", files, runtime="python3.11", handler="app.handler",
                              Layers=arns[:5])
    assert [l["Arn"] for l in created["Layers"]] == arns[:5]
    assert all(l["CodeSize"] > 0 for l in created["Layers"])
    # Removing them all.
    updated = update_configuration(lam, "five", Layers=[])
    assert "Layers" not in updated
    assert "Layers" not in lam.get_function_configuration(FunctionName="five")


def test_python_function_imports_from_its_layers_in_order(exec_lam, exec_server):
    lam = exec_lam
    base, over = _two_layers(lam)
    # A plain Python function first, so that the layered one can start in a zygote.
    create_function(lam, "warm", {"app.py": "def handler(e, c):\n    return 1\n"},
                    runtime="python3.11", handler="app.handler")
    assert invoke(lam, "warm").payload == 1
    wait_until(lambda: _zygote_ready(exec_server), timeout=30, what="a Python zygote")

    cfg = create_function(lam, "layered", {"app.py": PY_HANDLER}, runtime="python3.11",
                          handler="app.handler", Layers=[base, over])
    assert [l["Arn"] for l in cfg["Layers"]] == [base, over]
    out = invoke(lam, "layered")
    assert out.function_error is None, out.raw
    r = out.payload
    assert r["zygote"] is True  # the interpreter was started before the function was known
    # `over`'s site-packages comes first on sys.path, then /opt/python, where `over`'s
    # shared.py replaced `base`'s; `base`'s other module is still there.
    assert r["shared"] == "over"
    assert r["first_only"] == "base"
    assert r["data"] == "from over"
    assert r["write"] in ("OSError", "PermissionError")  # read-only /opt (EROFS)
    site, opt = "/opt/" + SITE, "/opt/python"
    assert r["path"].index("/var/task") < r["path"].index(site) < r["path"].index(opt)
    assert r["bin_on_path"] is True

    # The other order: `base` last wins /opt/python/shared.py; `over`'s site-packages copy
    # is still found first.
    update_configuration(lam, "layered", Layers=[over, base])
    r = invoke(lam, "layered").payload
    assert r["data"] == "from base"
    assert r["shared"] == "over"


def test_a_deleted_layer_version_keeps_working_for_functions_using_it(exec_lam, exec_server):
    lam = exec_lam
    base, over = _two_layers(lam)
    create_function(lam, "keeps", {"app.py": PY_HANDLER}, runtime="python3.11",
                    handler="app.handler", Layers=[base, over], Publish=True)
    lam.delete_layer_version(LayerName="base", VersionNumber=1)
    lam.delete_layer_version(LayerName="over", VersionNumber=1)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_layer_version_by_arn(Arn=base)
    # The configuration still names them, and a new environment still gets them: the
    # layers' zips stay stored while a function version uses them.
    conf = lam.get_function_configuration(FunctionName="keeps", Qualifier="1")
    assert [l["Arn"] for l in conf["Layers"]] == [base, over]
    lam.update_function_configuration(FunctionName="keeps", MemorySize=256)
    lam.get_waiter("function_updated_v2").wait(FunctionName="keeps")
    r = invoke(lam, "keeps").payload
    assert (r["shared"], r["first_only"]) == ("over", "base")
    r = invoke(lam, "keeps", Qualifier="1").payload
    assert (r["shared"], r["first_only"]) == ("over", "base")
    # New functions cannot name them any more.
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        create_function(lam, "late", {"app.py": PY_HANDLER}, runtime="python3.11",
                        handler="app.handler", Layers=[base])
    # Their zips are stored (named by their SHA-256) until the function is gone.
    digests = {base64.b64decode(lam.get_function_configuration(FunctionName="keeps")
                                ["CodeSha256"]).hex()}
    layer_blobs = {hashlib.sha256(z).hexdigest() for z in _two_layer_zips()}
    assert layer_blobs <= exec_server.blob_names()
    lam.delete_function(FunctionName="keeps")
    assert not (layer_blobs | digests) & exec_server.blob_names()


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not on this host")
def test_node_function_requires_a_module_from_its_layer(exec_lam):
    lam = exec_lam
    layer = _layer(lam, "nodemods", {
        "nodejs/node_modules/greeter/index.js":
            "module.exports = (n) => `hello ${n} from a layer`;\n",
    }, CompatibleRuntimes=["nodejs20.x"])
    create_function(lam, "noder", {"app.js": (
        "const greet = require('greeter');\n"
        "exports.handler = async (e) => ({ msg: greet(e.name), nodePath: process.env.NODE_PATH });\n"
    )}, runtime="nodejs20.x", handler="app.handler", Layers=[layer["LayerVersionArn"]])
    out = invoke(lam, "noder", {"name": "ada"})
    assert out.function_error is None, out.raw
    assert out.payload["msg"] == "hello ada from a layer"
    assert "/opt/nodejs/node_modules" in out.payload["nodePath"].split(":")


def test_layers_are_extracted_once_not_per_environment(exec_lam, exec_server):
    """Two functions naming the same layers in the same order share one extracted directory,
    made when the first was prepared; a cold start does not extract again."""
    lam = exec_lam
    base, over = _two_layers(lam)
    for name in ("one", "two"):
        create_function(lam, name, {"app.py": PY_HANDLER}, runtime="python3.11",
                        handler="app.handler", Layers=[base, over])
    code_dir = exec_server.data_dir / "code"
    opts = [p for p in code_dir.iterdir() if p.name.startswith("opt-")]
    assert len(opts) == 1
    made = opts[0].stat().st_mtime_ns
    for name in ("one", "two"):
        assert invoke(lam, name).payload["shared"] == "over"
    assert opts[0].stat().st_mtime_ns == made
    # Another order is another directory.
    update_configuration(lam, "two", Layers=[over, base])
    assert len([p for p in code_dir.iterdir() if p.name.startswith("opt-")]) == 2
    lam.delete_function(FunctionName="two")
    wait_until(lambda: len([p for p in code_dir.iterdir() if p.name.startswith("opt-")]) == 1,
               what="the unused layer directory removed")
