"""The Score map transform on a tiny random model saved to a folder (loaded like any model)."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import pytest
from datasets import Dataset
from datasets.fingerprint import Hasher
from reference_eval_loss import reference_losses

from hfevol.errors import ConfigError, InvalidRowError, MissingColumnError, ModelLoadError
from hfevol.models import load_model
from hfevol.scoring import OUTPUT_COLUMNS, Score

ROWS = {
    "instruction": ["Why is the sky blue?", "Add the numbers.", "Sort the list.", "Say hi."],
    "input": ["", "2 and 3", None, ""],
    "output": ["Because of Rayleigh scattering.", "The sum is 5.", "[1, 2, 3]", "Hi!"],
}


def test_map_adds_the_columns_and_matches_the_reference(tiny_lm_dir):
    score = Score(model=tiny_lm_dir, device="cpu", batch_size=3)
    scored = Dataset.from_dict(ROWS).map(score, batched=True)
    assert set(OUTPUT_COLUMNS) <= set(scored.column_names) and len(scored) == 4
    loaded = load_model(tiny_lm_dir, device="cpu")
    for row in scored:
        loss_q, loss_aq, loss_a = reference_losses(loaded.model, loaded.tokenizer, row["instruction"], row["input"] or "", row["output"])
        assert row["score_status"] == "ok" and row["score_reason"] == "" and not row["score_truncated"]
        assert row["loss_q"] == pytest.approx(loss_q, rel=1e-5)
        assert row["loss_a_given_q"] == pytest.approx(loss_aq, rel=1e-5)
        assert row["loss_a"] == pytest.approx(loss_a, rel=1e-5)
        assert row["ifd"] == pytest.approx(loss_aq / loss_a, rel=1e-5)
        assert row["ic_ifd"] == pytest.approx(loss_aq / (loss_q * loss_a), rel=1e-5)
    # token counts, by hand for the character tokenizer (BOS + one token per character)
    first = scored[0]
    question = len("Why is the sky blue?")
    assert first["tokens_q"] == question  # tokens 1 .. n-1, n = 1 + question
    assert first["tokens_a_given_q"] == 1 + len("Because of Rayleigh scattering.")  # "\n" + answer
    assert first["tokens_a"] == len("Because of Rayleigh scattering.")


def test_every_batch_writes_typed_columns(tiny_lm_dir):
    # the first map batch is all fine (no reason, as "" not None) and a later one is not: datasets must still write it
    ds = Dataset.from_dict({"instruction": ["Say hi.", "Say yes.", "Say no.", None], "output": ["Hi!", "Yes.", "", "x"]})
    scored = ds.map(Score(model=tiny_lm_dir, device="cpu"), batched=True, batch_size=2)
    assert scored["score_reason"] == ["", "", "empty answer", "column 'instruction': the value is None"]
    assert scored.features["score_reason"].dtype == "string" and scored.features["ic_ifd"].dtype == "float64"


def test_bad_rows_get_a_status_and_a_reason_and_are_never_dropped(tiny_lm_dir):
    ds = Dataset.from_list(
        [
            {"instruction": "Fine.", "output": "Yes.", "extra": 1},
            {"instruction": None, "output": "Yes.", "extra": 2},
            {"instruction": "Fine.", "output": None, "extra": 3},
            {"instruction": "   ", "output": "Yes.", "extra": 4},
            {"instruction": "Fine.", "output": "\n", "extra": 5},
        ]
    )
    scored = ds.map(Score(model=tiny_lm_dir, device="cpu"), batched=True)
    assert scored["extra"] == [1, 2, 3, 4, 5]
    assert scored["score_status"] == ["ok", "invalid_input", "invalid_input", "undefined", "undefined"]
    assert scored["score_reason"][1:] == [
        "column 'instruction': the value is None",
        "column 'output': the value is None",
        "empty instruction",
        "empty answer",
    ]
    assert all(math.isnan(scored[i]["ic_ifd"]) for i in range(1, 5))


def test_rows_whose_evolution_is_not_ok_are_skipped_and_kept(tiny_lm_dir):
    # an evolve + respond output: eliminated rows have no instruction to score
    ds = Dataset.from_dict(
        {
            "instruction": ["Say hi.", None, "Say no."],
            "output": ["Hi!", None, "No."],
            "evol_status": ["ok", "eliminated", "ok"],
        }
    )
    scored = ds.map(Score(model=tiny_lm_dir, device="cpu"), batched=True)
    assert scored["score_status"] == ["ok", "skipped", "ok"]
    assert scored["score_reason"][1] == "not scored: evol_status is 'eliminated'" and math.isnan(scored["ic_ifd"][1])
    # the gate is a setting: None scores every row (and the None instruction is then invalid input)
    ungated = ds.map(Score(model=tiny_lm_dir, device="cpu", skip_unless=None), batched=True)
    assert ungated["score_status"] == ["ok", "invalid_input", "ok"]
    assert ungated["ic_ifd"][0] == scored["ic_ifd"][0]


def test_non_string_values_are_marked_or_raised(tiny_lm_dir):
    batch = {"instruction": ["Fine.", 42], "output": ["Yes.", "Yes."]}
    out = Score(model=tiny_lm_dir, device="cpu")(batch)
    assert out["score_status"] == ["ok", "invalid_input"]
    assert out["score_reason"][1] == "column 'instruction': the value is a int, not a string"
    with pytest.raises(InvalidRowError, match=r"row 7, column 'instruction'"):
        Score(model=tiny_lm_dir, device="cpu", on_invalid="raise")(batch, [6, 7])


def test_missing_columns_are_named():
    with pytest.raises(MissingColumnError, match="'output' is missing"):
        Score(model="unused")({"instruction": ["x"], "response": ["y"]})


def test_missing_input_column_means_no_input(tiny_lm_dir):
    score = Score(model=tiny_lm_dir, device="cpu")
    with_column = score({"instruction": ["Say hi."], "input": [""], "output": ["Hi!"]})
    without = score({"instruction": ["Say hi."], "output": ["Hi!"]})
    assert with_column["ic_ifd"] == without["ic_ifd"]


def test_forms_are_applied_and_named_in_the_metadata(tiny_lm_dir):
    batch = {"instruction": ["Why is the sky blue?"], "output": ["Because of Rayleigh scattering."]}
    default = Score(model=tiny_lm_dir, device="cpu")(batch)
    other = Score(model=tiny_lm_dir, device="cpu", ifd_form="ppl_ratio", ic_ifd_form="multiplicative")
    out = other(batch)
    lq, laq, la = default["loss_q"][0], default["loss_a_given_q"][0], default["loss_a"][0]
    assert out["ifd"][0] == pytest.approx(math.exp(laq - la), rel=1e-9)
    assert out["ic_ifd"][0] == pytest.approx(laq * lq / la, rel=1e-9)
    meta = other.metadata()
    assert (meta["mode"], meta["ifd_form"], meta["ic_ifd_form"]) == ("reference", "ppl_ratio", "multiplicative")
    assert meta["max_length"] == 256 and meta["truncation"].startswith("right")


def _count_scored_sequences(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record how many sequences each call of the loss core receives (each one is a forward pass's row)."""
    import hfevol.scoring.frontend as transform  # the local scorers reach the loss core through it

    calls: list[int] = []
    real = transform.span_losses

    def counting(model, sequences, **kwargs):
        calls.append(len(sequences))
        return real(model, sequences, **kwargs)

    monkeypatch.setattr(transform, "span_losses", counting)
    return calls


def test_truncation_is_recorded_per_row(tiny_lm_dir, monkeypatch):
    calls = _count_scored_sequences(monkeypatch)
    score = Score(model=tiny_lm_dir, device="cpu", max_length=12)
    question = "A question longer than twelve characters"
    out = score({"instruction": ["Hi.", question], "output": ["Yes, fine.", "ok"]})
    assert out["score_truncated"] == [True, True]
    # row 0: 1 + 3 + 1 + 10 = 15 tokens -> 12 kept: L(A|Q) covers tokens 4..11 (8); the answer alone (11 tokens) fits
    assert (out["score_status"][0], out["tokens_a_given_q"][0], out["tokens_a"][0]) == ("ok", 8, 10)
    # row 1: the question (BOS + 40 characters) fills the limit, so L(A|Q) has no tokens: decided without the model
    assert out["score_status"][1] == "undefined"
    assert (
        out["score_reason"][1]
        == f"the question alone fills the 12-token limit ({1 + len(question)} tokens), so L(A|Q) has no scored tokens; not run through the model"
    )
    assert math.isnan(out["ifd"][1]) and math.isnan(out["ic_ifd"][1]) and out["tokens_q"][1] == 0
    assert calls == [2]  # row 0's two sequences only


def test_a_batch_of_rows_whose_question_fills_the_limit_never_runs_the_model(tiny_lm_dir, monkeypatch):
    calls = _count_scored_sequences(monkeypatch)
    score = Score(model=tiny_lm_dir, device="cpu", max_length=8)
    out = score({"instruction": ["Seven c", "Much longer than eight"], "output": ["Yes.", "No."]})
    assert out["score_status"] == ["undefined", "undefined"]
    assert out["score_reason"][0] == "the question alone fills the 8-token limit (8 tokens), so L(A|Q) has no scored tokens; not run through the model"
    assert calls == []


def test_transform_pickles_as_configuration_and_keeps_its_fingerprint(tiny_lm_dir):
    score = Score(model=tiny_lm_dir, device="cpu")
    before = Hasher.hash(score)
    score({"instruction": ["Say hi."], "output": ["Hi!"]})
    assert getattr(score, "_scorer", None) is not None
    assert Hasher.hash(score) == before
    copy = pickle.loads(pickle.dumps(score))
    assert getattr(copy, "_scorer", None) is None and copy == score


def test_chat_mode_without_a_chat_template_fails_before_any_row(tmp_path):
    from _tiny_lm import save_tiny_model

    folder = save_tiny_model(tmp_path / "plain", chat_template=False)
    with pytest.raises(ConfigError, match="has no chat template"):
        Score(model=str(folder), device="cpu", mode="chat")({"instruction": ["Say hi."], "output": ["Hi!"]})


def test_chat_mode_scores_the_assistant_turn(tiny_lm_dir):
    out = Score(model=tiny_lm_dir, device="cpu", mode="chat")({"instruction": ["Say hi."], "output": ["Hi!"]})
    assert out["score_status"] == ["ok"]
    # user content "Say hi." (7 tokens); answer "Hi!" + the end-of-turn marker (4), in both passes
    assert (out["tokens_q"][0], out["tokens_a_given_q"][0], out["tokens_a"][0]) == (7, 4, 4)


def test_a_model_that_is_not_a_causal_lm_is_refused(tmp_path):
    from _tiny_lm import char_tokenizer
    from transformers import T5Config

    folder = tmp_path / "t5"
    T5Config(vocab_size=120, d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8).save_pretrained(folder)
    char_tokenizer().save_pretrained(folder)
    with pytest.raises(ModelLoadError, match="causal language model"):
        Score(model=str(folder), device="cpu")({"instruction": ["Say hi."], "output": ["Hi!"]})


@pytest.mark.parametrize(
    "options, needle",
    [({"mode": "template"}, "mode"), ({"ifd_form": "ppl"}, "ifd_form"), ({"batch_size": 0}, "batch_size"), ({"max_length": 1}, "max_length")],
)
def test_bad_options_are_refused_at_construction(options, needle):
    with pytest.raises(ConfigError, match=needle):
        Score(**options)


def test_scoring_nothing_loads_nothing():
    score = Score(model=str(Path("/does/not/exist")))
    out = score({"instruction": [None], "output": ["x"]})  # no valid row: the model is never needed
    assert out["score_status"] == ["invalid_input"]
