"""Unmodified runtime interface clients run as custom runtimes (provided.al2023):

* awslambdaric, the Python client AWS publishes on PyPI (with its C extension), installed at
  test time with pip;
* a Rust function on the `lambda_runtime` crate (fixtures/rust-fn), built at test time with
  cargo.

Both are cached under target/ (pip's target directory, cargo's target directory), so only
the first run pays for the download or the build; nothing is skipped.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from helpers import FAST_WAIT, REPO, ROLE, create_function, invoke

FIXTURES = Path(__file__).parent / "fixtures"
BUILD_DEADLINE = 1800  # seconds: a first cargo build or pip download on a slow machine

pytestmark = pytest.mark.slow
MARKER = ".stratus-complete"


def _system_python_minor() -> str:
    out = subprocess.run(["/usr/bin/python3", "-c",
                          "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
                         capture_output=True, text=True, timeout=30, check=True)
    return out.stdout.strip()


def _zip_tree(root: Path, extra: dict[str, str]) -> bytes:
    """Zips the tree under `root` plus `extra` files the way `zip -r` does: with an entry
    (mode 0755) for each directory, files 0644, `bootstrap` 0755. (Zips without directory
    entries are test_invoke.py's test_code_in_subdirectories_of_a_zip_without_directory_entries.)"""
    buf = io.BytesIO()

    def add(name: str, data: bytes, mode: int):
        info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
        info.external_attr = mode << 16
        if name.endswith("/"):
            info.external_attr |= 0x10  # MS-DOS directory flag
        info.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(info, data)

    with zipfile.ZipFile(buf, "w") as zf:
        for path in sorted(root.rglob("*")):
            if "__pycache__" in path.parts or path.name == MARKER:
                continue
            rel = path.relative_to(root).as_posix()
            if path.is_dir():
                add(rel + "/", b"", 0o040755)
            elif path.is_file():
                add(rel, path.read_bytes(), 0o100644)
        for name, text in extra.items():
            add(name, text.encode(), 0o100755 if name == "bootstrap" else 0o100644)
    return buf.getvalue()


def _create(lam, name: str, code: bytes, **kw):
    lam.create_function(FunctionName=name, Runtime="provided.al2023", Role=ROLE,
                        Code={"ZipFile": code}, **kw)
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig=FAST_WAIT)


@pytest.fixture(scope="session")
def awslambdaric_tree() -> Path:
    """awslambdaric and its dependencies, `pip install --target`ed for the Python that
    functions run (/usr/bin/python3), once per machine."""
    minor = _system_python_minor()
    dest = REPO / "target" / f"e2e-awslambdaric-py{minor}"
    marker = dest / MARKER
    if not marker.exists():
        staging = dest.with_name(f"{dest.name}.staging-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
               "--target", str(staging), "--only-binary=:all:", "--python-version", minor,
               "awslambdaric"]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILD_DEADLINE)
        assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{res.stdout}\n{res.stderr}"
        (staging / MARKER).write_text(" ".join(cmd) + "\n")
        shutil.rmtree(dest, ignore_errors=True)
        staging.rename(dest)
    return dest


RIC_APP = '''\
import os


def handler(event, context):
    if "fail" in event:
        raise RuntimeError(event["fail"])
    return {
        "echo": event,
        "request_id": context.aws_request_id,
        "function_name": context.function_name,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": int(context.memory_limit_in_mb),
        "remaining_ms": context.get_remaining_time_in_millis(),
        "client": "awslambdaric",
    }
'''

RIC_BOOTSTRAP = "#!/bin/sh\nexec /usr/bin/python3 -m awslambdaric app.handler\n"


def test_awslambdaric_python_client(exec_lam, awslambdaric_tree):
    code = _zip_tree(awslambdaric_tree, {"bootstrap": RIC_BOOTSTRAP, "app.py": RIC_APP})
    _create(exec_lam, "ric", code, Handler="app.handler", Timeout=10)
    event = {"hello": "world", "n": [1, 2, 3]}
    inv = invoke(exec_lam, "ric", event, tail=True)
    assert inv.status == 200
    assert inv.function_error is None, f"{inv.raw!r}\nlog:\n{inv.log}"
    doc = inv.payload
    assert doc["echo"] == event
    assert doc["client"] == "awslambdaric"
    assert doc["request_id"] == inv.request_id
    assert doc["function_name"] == "ric"
    assert doc["invoked_function_arn"] == "arn:aws:lambda:us-east-1:000000000000:function:ric"
    assert doc["memory_limit_in_mb"] == 128
    assert 0 < doc["remaining_ms"] <= 10000
    assert f"START RequestId: {inv.request_id} Version: $LATEST" in inv.log
    assert "Init Duration" in inv.log.splitlines()[-1]

    # A handler exception: awslambdaric's error document, and the environment lives on.
    bad = invoke(exec_lam, "ric", {"fail": "ric says no"}, tail=True)
    assert bad.function_error == "Unhandled"
    err = bad.payload
    assert err["errorType"] == "RuntimeError", err
    assert err["errorMessage"] == "ric says no"
    assert err["requestId"] == bad.request_id, err
    assert isinstance(err["stackTrace"], list)
    assert "Init Duration" not in bad.log.splitlines()[-1], "the error cost the environment"

    again = invoke(exec_lam, "ric", {"again": True})
    assert again.function_error is None, again.raw
    assert again.payload["echo"] == {"again": True}


def test_awslambdaric_init_error(exec_lam, awslambdaric_tree):
    code = _zip_tree(awslambdaric_tree, {
        "bootstrap": RIC_BOOTSTRAP.replace("app.handler", "missing_module.handler"),
        "app.py": RIC_APP})
    _create(exec_lam, "ric-init", code, Handler="missing_module.handler", Timeout=10)
    inv = invoke(exec_lam, "ric-init", {})
    assert inv.function_error == "Unhandled"
    assert inv.payload["errorType"] == "Runtime.ImportModuleError", inv.payload
    assert "missing_module" in inv.payload["errorMessage"]


@pytest.fixture(scope="session")
def rust_bootstrap() -> bytes:
    """The fixtures/rust-fn binary, built with cargo (incremental: cached in
    target/e2e-rust-fn)."""
    manifest = FIXTURES / "rust-fn" / "Cargo.toml"
    target_dir = REPO / "target" / "e2e-rust-fn"
    cmd = ["cargo", "build", "--release", "--locked", "--manifest-path", str(manifest),
           "--target-dir", str(target_dir)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARGO_TARGET_")}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILD_DEADLINE, env=env)
    assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{res.stderr[-6000:]}"
    binary = target_dir / "release" / "stratus-e2e-rust-fn"
    assert binary.is_file()
    return binary.read_bytes()


def test_rust_lambda_runtime_client(exec_lam, rust_bootstrap):
    create_function(exec_lam, "rusty", {"bootstrap": rust_bootstrap}, runtime="provided.al2023",
                    handler="bootstrap", MemorySize=256, Timeout=10)
    event = {"message": "hi from python", "nested": {"list": [1, None, True]}}
    inv = invoke(exec_lam, "rusty", event, tail=True)
    assert inv.status == 200
    assert inv.function_error is None, f"{inv.raw!r}\nlog:\n{inv.log}"
    doc = inv.payload
    assert doc["echo"] == event
    assert doc["request_id"] == inv.request_id
    assert doc["function_name"] == "rusty"
    assert doc["invoked_function_arn"] == "arn:aws:lambda:us-east-1:000000000000:function:rusty"
    assert doc["memory_size"] == 256
    assert 0 < doc["remaining_ms"] <= 10000
    assert "Init Duration" in inv.log.splitlines()[-1]

    bad = invoke(exec_lam, "rusty", {"fail": "rust says no"})
    assert bad.function_error == "Unhandled"
    assert bad.payload == {"errorType": "EchoError", "errorMessage": "rust says no"}

    warm = invoke(exec_lam, "rusty", {"after": "error"}, tail=True)
    assert warm.function_error is None, warm.raw
    assert warm.payload["echo"] == {"after": "error"}
    assert "Init Duration" not in warm.log.splitlines()[-1], "the error cost the environment"
