"""OpenAIBackend against a real third-party OpenAI-compatible server: llama-cpp-python's, serving the embedded GGUF.

llama-cpp-python builds from source (about 7 minutes) and pins its own dependencies, so it
lives in a separate virtual environment named by ``HFEVOL_LLAMA_CPP_PYTHON``. Without it
these tests are deselected (conftest.py), and ``make test-llamacpp`` builds that environment
and runs them.
"""

from __future__ import annotations

import os
import subprocess
import time

import httpx2
import pytest
from _servers import free_port, rows

from hfevol.backends import GenerationRequest, SamplingParams
from hfevol.backends.openai import OpenAIBackend
from hfevol.backends.retry import RetryPolicy

pytestmark = [pytest.mark.llamacpp, pytest.mark.integration]

PYTHON = os.environ.get("HFEVOL_LLAMA_CPP_PYTHON")
N_CTX = 512
# llama.cpp's server answers one request at a time on the CPU: the time-out must cover the wait in its queue.
FAST = RetryPolicy(max_attempts=3, max_total_seconds=300, timeout=120, initial_backoff=0.05, max_backoff=0.2)


@pytest.fixture(scope="module")
def llama_url():
    if not PYTHON:
        pytest.fail("set HFEVOL_LLAMA_CPP_PYTHON to the python of a venv with llama-cpp-python[server]")
    from hfevol.models.embedded import gguf_path

    port = free_port()
    cmd = [PYTHON, "-m", "llama_cpp.server", "--model", str(gguf_path()), "--host", "127.0.0.1", "--port", str(port),
           "--n_ctx", str(N_CTX), "--n_threads", "2", "--seed", "0"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx2.get(url + "/v1/models", timeout=2).status_code == 200:
                    break
            except httpx2.TransportError:
                time.sleep(0.5)
        else:
            pytest.fail("llama-cpp-python's server did not start in 120 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(20)


def test_start_up_check_reads_the_served_model(llama_url):
    served = OpenAIBackend(urls=llama_url + "/v1", retry=FAST).check()
    assert served["model"].endswith("SmolLM2-135M-Instruct.Q4_1.gguf") and served["revision"] is None


def test_chat_and_completions_routes_generate(llama_url):
    params = SamplingParams(temperature=0, top_p=1.0, max_new_tokens=16)
    request = GenerationRequest.chat("Name one primary color.", params=params, seed=1)
    chat = OpenAIBackend(urls=llama_url, retry=FAST).generate([request])[0]
    raw = OpenAIBackend(urls=llama_url, route="completions", tokenizer="embedded", retry=FAST).generate([request])[0]
    assert chat.ok and chat.text.strip() and chat.completion_tokens and chat.completion_tokens <= 16
    assert raw.ok and raw.text.strip()


def test_evolve_through_a_real_openai_server(llama_url):
    from datasets import Dataset

    from hfevol.evolution import EvolInstruct

    evolve = EvolInstruct(backend=OpenAIBackend(urls=llama_url, max_in_flight=2, retry=FAST), sampling=SamplingParams(max_new_tokens=32))
    out = Dataset.from_list(rows(4)).map(evolve.acall, batched=True, with_indices=True)
    assert set(out["evol_status"]) <= {"ok", "truncated"} and all(out["evolved_instruction"])


def test_a_prompt_beyond_the_context_is_a_per_row_error(llama_url):
    backend = OpenAIBackend(urls=llama_url, retry=FAST)
    long = GenerationRequest.chat("word " * (2 * N_CTX), params=SamplingParams(max_new_tokens=8), seed=1)
    [result] = backend.generate([long])
    assert not result.ok and "HTTP 400" in result.error
    assert backend.stats.snapshot()["failures"] == {"rejected": 1}
