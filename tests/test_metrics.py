"""The evaluate metrics: loaded from the repository, by bare name after the install step, and their doctests."""

from __future__ import annotations

import doctest
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from reference_eval_loss import reference_scores

from hfevol.metric_install import shipped_metrics

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def one_modules_cache(tmp_path_factory, monkeypatch):
    """evaluate imports loaded modules as the package `evaluate_modules`, which Python binds to the first
    cache folder it sees: keep one folder for the whole session, away from the user's cache."""
    import evaluate.config

    home = tmp_path_factory.getbasetemp() / "evaluate-modules"
    monkeypatch.setattr(evaluate.config, "HF_MODULES_CACHE", home)


ROWS = [
    {"instruction": "Why is the sky blue?", "input": "", "output": "Because of Rayleigh scattering."},
    {"instruction": "Add the numbers.", "input": "2 and 3", "output": "The sum is 5."},
    {"instruction": "Sort the list.", "input": "", "output": ""},
]


def test_hfevol_ships_both_metrics_in_the_evaluate_layout():
    assert shipped_metrics() == ["ic_ifd", "ifd"]
    for name in shipped_metrics():
        folder = REPO / "metrics" / name
        assert (folder / "README.md").read_text().startswith("---\n")
        assert "hfevol" in (folder / "requirements.txt").read_text()
        assert "import evaluate\n" in (folder / f"{name}.py").read_text()  # not `from evaluate import Metric`


def test_load_from_the_repository_matches_the_reference(tiny_lm_dir, monkeypatch):
    import evaluate

    from hfevol.models import load_model

    monkeypatch.chdir(REPO)
    metric = evaluate.load("metrics/ic_ifd")
    results = metric.compute(
        instructions=[r["instruction"] for r in ROWS],
        responses=[r["output"] for r in ROWS],
        inputs=[r["input"] for r in ROWS],
        model_id=tiny_lm_dir,
        batch_size=2,
        device="cpu",
    )
    loaded = load_model(tiny_lm_dir, device="cpu")
    expected = reference_scores(loaded.model, loaded.tokenizer, ROWS[:2])
    for i, row in enumerate(expected):
        for key in ("ic_ifd", "ifd", "loss_q", "loss_a_given_q", "loss_a"):
            assert results[key][i] == pytest.approx(row[key], rel=1e-5)
    assert results["mean_ic_ifd"] == pytest.approx((expected[0]["ic_ifd"] + expected[1]["ic_ifd"]) / 2, rel=1e-5)
    assert results["undefined"] == 1 and results["reasons"] == ["", "", "empty answer"]

    ifd = evaluate.load("metrics/ifd").compute(instructions=["Say hi."], responses=["Hi!"], model_id=tiny_lm_dir, device="cpu")
    assert sorted(ifd) == ["ifd", "loss_a", "loss_a_given_q", "mean_ifd", "reasons", "undefined"]


def test_empty_input_is_refused(tiny_lm_dir, monkeypatch):
    import evaluate

    from hfevol.errors import DataError

    monkeypatch.chdir(REPO)
    with pytest.raises(DataError, match="empty"):
        evaluate.load("metrics/ifd").compute(instructions=[], responses=[], model_id=tiny_lm_dir)


@pytest.mark.slow  # three fresh interpreters that import evaluate and torch: 20 s idle, a minute on a busy machine
def test_bare_name_loads_offline_after_install_metrics(tmp_path, tiny_lm_dir):
    # a fresh interpreter and an empty modules cache, away from the repository (no ./ic_ifd folder)
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_EVALUATE_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    hfevol = [sys.executable, "-m", "hfevol.cli"]
    before = subprocess.run(
        [sys.executable, "-c", "import evaluate; evaluate.load('ic_ifd')"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert before.returncode != 0 and "Couldn't find a module script" in before.stderr
    done = subprocess.run([*hfevol, "install-metrics"], cwd=tmp_path, env=env, capture_output=True, text=True, check=True, timeout=300)
    assert "evaluate-metric--ic_ifd" in done.stdout
    script = (
        "import evaluate\n"
        "m = evaluate.load('ic_ifd')\n"
        f"r = m.compute(instructions=['Say hi.'], responses=['Hi!'], model_id={tiny_lm_dir!r}, device='cpu')\n"
        "print(type(m).__name__, round(r['ic_ifd'][0] - r['loss_a_given_q'][0] / (r['loss_q'][0] * r['loss_a'][0]), 12))\n"
    )
    after = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert after.returncode == 0, after.stderr
    assert after.stdout.split() == ["ICIFD", "0.0"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ic_ifd", "ifd"])
def test_metric_docstring_examples_run(name, embedded, monkeypatch):
    monkeypatch.chdir(REPO)
    path = REPO / "metrics" / name / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_metric_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = [t for t in finder.find(module) if t.examples]
    assert tests, f"{name} has no docstring examples"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in tests:
        runner.run(test)
    summary = runner.summarize(verbose=False)
    assert summary.failed == 0 and summary.attempted >= 3


def test_install_refuses_an_unknown_metric():
    from hfevol.errors import ConfigError
    from hfevol.metric_install import install_metrics

    with pytest.raises(ConfigError, match="'bleu'") as info:
        install_metrics(["bleu"])
    assert "ic_ifd, ifd" in str(info.value)


def test_package_root_exposes_scoring_lazily():
    import hfevol

    assert hfevol.Score.__name__ == "Score" and hfevol.select.__module__ == "hfevol.scoring.select"
    assert hfevol.install_metrics.__module__ == "hfevol.metric_install"
