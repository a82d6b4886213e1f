"""``hfevol car`` writes the run record: the input's stages and commands, then a ``car`` stage naming the
generators and the student (tiny local models and the TGI test server, so it runs in seconds)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from hfevol.cli import main
from hfevol.testing import EchoEngine, TGITestServer

ROWS = [
    {"instruction": "what is two plus four", "output": "it is six", "alt": "six"},
    {"instruction": "why is the sky blue", "output": "because light scatters", "alt": "light"},
    {"instruction": "say hello", "output": "hello", "alt": "hello hello"},
]


def _input_folder(folder: Path) -> Path:
    from datasets import Dataset

    from hfevol.io import write_output
    from hfevol.record import RunRecord, StageRecord

    ds = Dataset.from_list(ROWS)
    record = RunRecord.start(ds, source="builtin").with_command("evolve", {"rounds": 1}).with_stage(StageRecord("evol_instruct", settings={"round": 1}))
    return write_output(ds, folder, record=record)


def _digest(rows: list[dict]) -> str:
    """The rows' digest as documented (sorted-key JSON, one row a line), computed here on its own."""
    h = hashlib.sha256()
    for row in rows:
        h.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode() + b"\n")
    return "sha256:" + h.hexdigest()


def test_car_extends_the_input_record_with_a_car_stage_naming_generators_and_student(tmp_path: Path, tiny_lm_dir: str, capsys) -> None:
    from test_car_reward import tiny_reward_model

    data = _input_folder(tmp_path / "evolved")
    before = json.loads((data / "hfevol_run.json").read_text())
    reward = tiny_reward_model(tmp_path / "rm")
    out = tmp_path / "car"
    with TGITestServer(EchoEngine()) as srv:
        argv = ["car", "--dataset", str(data), "--student", tiny_lm_dir, "--generator", "column:output", "--generator", "alt=column:alt",
                "--generator", f"echo={srv.url}", "--reward", str(reward), "--max-new-tokens", "8", "--out", str(out)]  # fmt: skip
        assert main(argv) == 0
        url = srv.url
    assert "record" in capsys.readouterr().out
    text = (out / "hfevol_run.json").read_text()
    record = json.loads(text)
    # the input's stages and commands come first, unchanged; then car's
    assert [s["stage"] for s in record["stages"]] == ["evol_instruct", "car"]
    assert record["stages"][0] == before["stages"][0]
    assert [c["command"] for c in record["commands"]] == ["evolve", "car"]
    assert record["seed_data"] == before["seed_data"]
    car = record["stages"][1]
    assert [g["label"] for g in car["generators"]] == ["output", "alt", "echo"]
    assert car["generators"][0] == {"label": "output", "kind": "column", "column": "output"}
    assert car["generators"][2]["kind"] == "endpoint" and car["generators"][2]["model"] == EchoEngine.model_id
    assert car["student"] == Path(tiny_lm_dir).name and car["backend"]["kind"] == "transformers" and car["backend"]["model"] == Path(tiny_lm_dir).name
    assert car["reward"]["kind"] == "classifier" and car["reward"]["model"] == "rm"
    assert car["best"] in ("output", "alt", "echo") and car["rows_compared"] == 3 and car["beta"] == 1.0
    assert car["input"] == {"rows": 3, "digest": _digest(ROWS)}
    assert record["commands"][1]["input"]["digest"] == _digest(ROWS)
    assert record["files"] == [] and record["rows"] == 3  # the data stays in the input's folder
    assert record["car"]["best"] == car["best"]
    # the stage names models, not URLs (the command's options keep the redacted URL that re-runs it, as every command's do)
    assert "127.0.0.1" not in json.dumps(car) and record["commands"][1]["options"]["generator"][2] == f"echo={url}"
    assert f'"{tmp_path}' not in text and f'"{tiny_lm_dir}' not in text  # no absolute path anywhere (relative ones, as every command records)
    assert not list(out.glob("*.tmp"))
    # car's folder is still not a dataset to publish
    assert main(["publish", str(out), "--version", "v1"]) == 2
    assert "has no data" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("spec", "public"),
    [
        ("echo=http://user:secret@127.0.0.1:8080/v1?key=abc", "echo=http://***@127.0.0.1:8080/v1?key=***"),
        ("judge:openai+https://u:p@host/v1", "judge:openai+https://***@host/v1"),
        ("embedded:gemma3-270m", "embedded:gemma3-270m"),
        ("column:output", "column:output"),
    ],
)
def test_generator_and_reward_specs_are_recorded_without_secrets(spec: str, public: str) -> None:
    from hfevol.cli.car import _public_spec

    assert _public_spec(spec) == public
