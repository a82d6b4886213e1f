"""``hfevol car`` end to end (two real models answer, SmolLM2 is the student) and its early errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from hfevol.cli import main


def write_scores(path: Path, scores: dict[str, float]) -> Path:
    path.write_text("generator,score\n" + "".join(f"{g},{s}\n" for g, s in scores.items()))
    return path


@pytest.mark.parametrize(
    ("scores", "message"),
    [({"embedded": 1.0, "gemma3-270m": 2.0}, "3 or more generators"), ({"embedded": 2.0, "gemma3-270m": 2.0, "output": 2.0}, "all 2.0")],
)
def test_bad_scores_stop_before_any_model_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str], scores: dict, message: str) -> None:
    path = write_scores(tmp_path / "s.csv", scores)
    argv = ["car", "--generator", "embedded", "--generator", "embedded:gemma3-270m", "--generator", "column:output",
            "--reward", str(tmp_path / "no-rm"), "--scores", str(path), "--out", str(tmp_path / "out")]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Hint:" in err
    assert not (tmp_path / "out").exists()


def test_bad_generator_and_beta(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["car", "--generator", "gpt-4", "--reward", "x", "--out", str(tmp_path)]) == 2
    assert "not understood" in capsys.readouterr().err
    assert main(["car", "--generator", "embedded", "--reward", "x", "--beta", "-1", "--out", str(tmp_path)]) == 2
    assert "beta=-1.0" in capsys.readouterr().err


@pytest.mark.slow
def test_car_end_to_end_with_two_real_generators(tmp_path: Path, capsys: pytest.CaptureFixture[str], embedded) -> None:
    from test_car_reward import tiny_reward_model

    reward_model = tiny_reward_model(tmp_path / "rm")
    scores = write_scores(tmp_path / "measured.csv", {"embedded": 3.0, "gemma3-270m": 1.0, "output": 5.0})
    out = tmp_path / "car"
    argv = ["car", "--student", "embedded", "--generator", "embedded", "--generator", "embedded:gemma3-270m", "--generator", "column:output",
            "--reward", str(reward_model), "--dataset", "builtin", "--limit", "3", "--max-new-tokens", "16", "--beta", "0.5",
            "--scores", str(scores), "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| rank | generator |" in printed and "recommended:" in printed
    for name in ("car.csv", "car.md", "car_chart.png", "car_run.json", "car_rows.jsonl", "responses.jsonl"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "car_chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the Generator-Zoo table: one response column per generator, generated here
    responses = [json.loads(line) for line in (out / "responses.jsonl").read_text().splitlines()]
    assert len(responses) == 3
    assert all(r["embedded"] and r["gemma3-270m"] for r in responses)
    assert responses[0]["embedded"] != responses[0]["gemma3-270m"]
    assert "google/gemma-3-270m" in responses[0]["gemma3-270m_responder"]

    table = list(csv.DictReader((out / "car.csv").open()))
    assert sorted(r["generator"] for r in table) == ["embedded", "gemma3-270m", "output"]
    for r in table:  # CAR recomputed from the table's own reward and loss
        assert float(r["car"]) == pytest.approx(float(r["reward"]) / (1 + 0.5 * float(r["loss"])), rel=1e-6)
        assert float(r["loss"]) > 0 and int(r["rows"]) == 3
    assert [float(r["car"]) for r in table] == sorted((float(r["car"]) for r in table), reverse=True)

    run = json.loads((out / "car_run.json").read_text())
    assert run["reward"]["kind"] == "classifier" and run["reward"]["model"] == str(reward_model)
    assert run["student"]["model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert run["beta"] == 0.5 and run["loss_averaging"] == "token"
    assert set(run["spearman"]) == {"car", "reward", "perplexity", "ifd", "length"}
    assert run["beta_fit"]["rho_leave_one_out"] is None  # 3 generators: no fold can be fitted
