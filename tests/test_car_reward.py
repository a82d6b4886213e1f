"""Both reward paths: a sequence-classification reward model built here, and an LLM judge."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from hfevol.backends.base import Backend, GenerationResult
from hfevol.car.reward import ClassifierReward, JudgeReward, parse_rating
from hfevol.errors import ConfigError, ModelNotFoundError

WORDS = "what is two plus four it six the sky blue because light scatters say hello".split()
TEMPLATE = "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} <|end|> {% endfor %}"


def tiny_reward_model(folder: Path, *, num_labels: int = 1, chat_template: str | None = TEMPLATE) -> Path:
    """A random 1-layer Llama sequence classifier with a word-level tokenizer, saved like a real one."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForSequenceClassification, PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<|user|>", "<|assistant|>", "<|end|>"]
    vocab = {w: i for i, w in enumerate(specials + WORDS)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>", eos_token="<|end|>")
    if chat_template:
        tokenizer.chat_template = chat_template
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=2, max_position_embeddings=64, num_labels=num_labels, pad_token_id=0)  # fmt: skip
    if num_labels > 1:
        config.id2label = {i: f"objective_{i}" for i in range(num_labels)}
        config.label2id = {v: k for k, v in config.id2label.items()}
    LlamaForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def manual_scores(folder: Path, texts: list[str], head: int = 0) -> list[float]:
    """One text at a time, no padding: the reference the batched scorer must match."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    out = []
    with torch.inference_mode():
        for text in texts:
            ids = tok(text, return_tensors="pt", add_special_tokens=False)
            out.append(model(**ids).logits[0, head].item())
    return out


def test_classifier_reward_scores_pairs_through_its_chat_template(tmp_path: Path) -> None:
    folder = tiny_reward_model(tmp_path / "rm")
    reward = ClassifierReward(model=str(folder), batch_size=2, device="cpu")
    instructions = ["what is two plus four", "say hello", "why is the sky blue"]
    responses = ["six", "hello hello hello hello", "because light scatters"]
    assert reward.render("say hello", "hello") == "<|user|> say hello <|end|> <|assistant|> hello <|end|> "
    got = reward.score(instructions, responses)
    texts = [f"<|user|> {q} <|end|> <|assistant|> {a} <|end|> " for q, a in zip(instructions, responses)]
    assert got == pytest.approx(manual_scores(folder, texts), abs=1e-5)  # padding in a batch of 2 changes nothing
    assert len(set(got)) == 3
    assert reward.describe() == {"kind": "classifier", "model": str(folder), "reward_head": 0, "head_label": "LABEL_0"}


def test_multi_output_reward_model_needs_a_head(tmp_path: Path) -> None:
    folder = tiny_reward_model(tmp_path / "rm3", num_labels=3)
    with pytest.raises(ConfigError, match=r"3 outputs \(objective_0, objective_1, objective_2\).*\n.*reward_head=K"):
        ClassifierReward(model=str(folder)).score(["say hello"], ["hello"])
    with pytest.raises(ConfigError, match="out of range"):
        ClassifierReward(model=str(folder), reward_head=3).score(["say hello"], ["hello"])
    chosen = ClassifierReward(model=str(folder), reward_head=2, device="cpu")
    text = "<|user|> say hello <|end|> <|assistant|> hello <|end|> "
    assert chosen.score(["say hello"], ["hello"]) == pytest.approx(manual_scores(folder, [text], head=2), abs=1e-5)
    assert chosen.describe()["head_label"] == "objective_2"


def test_reward_model_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="reward model"):
        ClassifierReward(model=str(tmp_path / "nowhere")).score(["a"], ["b"])
    folder = tiny_reward_model(tmp_path / "plain", chat_template=None)
    with pytest.raises(ConfigError, match="no chat template"):
        ClassifierReward(model=str(folder)).score(["a"], ["b"])
    with pytest.raises(ConfigError, match="reward_head"):
        ClassifierReward(model=str(folder), reward_head=-1)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [("Rating: 7", 7.0), ("**8**/10", 8.0), ("7 out of 10", 7.0), ("I'd say 6.5.", 6.5), ("Out of 10, I give 3", 3.0),
     ("on a scale of 1 to 10: 9", 9.0), ("10/10", 10.0), ("0, then 42", math.nan), ("no idea", math.nan), ("", math.nan), (None, math.nan)],
)  # fmt: skip
def test_parse_rating(reply: str | None, expected: float) -> None:
    got = parse_rating(reply)
    assert (math.isnan(got) and math.isnan(expected)) or got == expected


class ScriptedJudge(Backend):
    """Replies from a list, and keeps the prompts it was sent."""

    kind = "scripted"

    def __init__(self, replies: list[GenerationResult]) -> None:
        self.replies = list(replies)
        self.prompts: list[str] = []

    def describe(self) -> dict:
        return {"backend": "scripted"}

    def generate(self, requests):  # noqa: ANN001, ANN201
        self.prompts += [r.messages[-1][1] for r in requests]
        assert all(r.params.greedy for r in requests)
        return [self.replies.pop(0) for _ in requests]


def test_judge_reward_sends_our_prompt_and_parses() -> None:
    judge = ScriptedJudge([GenerationResult("Rating: 8", "stop"), GenerationResult("great answer", "stop"), GenerationResult.failure("boom")])
    reward = JudgeReward(backend=judge)
    got = reward.score(["say hello", "what is two plus four", "x"], ["hello", "six", "y"])
    assert got[0] == 8.0 and math.isnan(got[1]) and math.isnan(got[2])
    assert "Instruction:\nwhat is two plus four" in judge.prompts[1] and "Response:\nsix" in judge.prompts[1]
    described = reward.describe()
    assert described["kind"] == "judge" and described["prompt"] == "car/judge" and len(described["prompt_version"]) == 12


@pytest.mark.slow
def test_judge_reward_with_the_embedded_model() -> None:
    from hfevol.backends.local import TransformersBackend

    got = JudgeReward(backend=TransformersBackend(device="cpu")).score(["Name three primary colours."], ["Red, blue and yellow."])
    assert len(got) == 1 and (math.isnan(got[0]) or 1 <= got[0] <= 10)


# -- the probability judge ------------------------------------------------------------------


def test_expected_rating_by_hand() -> None:
    from hfevol.car.judge_probs import expected_rating

    never = -1e9
    log_probs = [never] * 10
    log_probs[1], log_probs[9] = math.log(0.25), math.log(0.75)  # ratings 2 and 10
    assert expected_rating(log_probs) == pytest.approx(0.25 * 2 + 0.75 * 10)
    assert expected_rating([-1000.0 - k for k in range(10)]) == pytest.approx(
        sum(k * math.exp(-(k - 1)) for k in range(1, 11)) / sum(math.exp(-(k - 1)) for k in range(1, 11))
    )


def _reply_log_prob(model, tokenizer, user: str, reply: str) -> float:
    """log P(reply + end-of-turn | the user turn), by a plain forward pass over the rendered chat (no BOS, as the construction)."""
    import torch

    prompt = tokenizer.apply_chat_template([{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template([{"role": "user", "content": user}, {"role": "assistant", "content": reply}], tokenize=False)
    ids = tokenizer(full, add_special_tokens=False).input_ids
    start = len(tokenizer(prompt, add_special_tokens=False).input_ids)
    end = start + len(reply) + 1  # one token per character, then <|end|>
    with torch.no_grad():
        logp = model(torch.tensor([ids])).logits[0].float().log_softmax(-1)
    return sum(logp[t - 1, ids[t]].item() for t in range(start, end))


def test_probability_judge_matches_a_plain_computation(tmp_path: Path) -> None:
    from _tiny_lm import save_tiny_model

    from hfevol import prompts
    from hfevol.car.judge_probs import ProbabilityJudgeReward, expected_rating
    from hfevol.models import load_model

    folder = str(save_tiny_model(tmp_path / "judge", context=1024))
    pairs = (["Say hi.", "Add 2 and 3."], ["Hi!", "It is 5."])
    judge = ProbabilityJudgeReward(model=folder, device="cpu", batch_size=7)  # batches cut across pairs
    got = judge.score(*pairs)
    loaded = load_model(folder, device="cpu")
    for q, a, value in zip(*pairs, got):
        user = prompts.render("car/judge", instruction=q, response=a)
        want = expected_rating([_reply_log_prob(loaded.model, loaded.tokenizer, user, f"Rating: {k}") for k in range(1, 11)])
        assert value == pytest.approx(want, rel=1e-5) and 1.0 <= value <= 10.0
    assert judge.describe()["kind"] == "judge_probabilities"


def test_probability_judge_gives_nan_for_a_pair_longer_than_its_context(tiny_lm_dir: str) -> None:
    from hfevol.car.judge_probs import ProbabilityJudgeReward

    assert math.isnan(ProbabilityJudgeReward(model=tiny_lm_dir, device="cpu").score(["Say hi."], ["Hi!"])[0])  # 256 tokens: the prompt alone is longer


def test_probability_judge_needs_a_local_model() -> None:
    import argparse

    from hfevol.car.judge_probs import ProbabilityJudgeReward
    from hfevol.cli.car import reward_from

    with pytest.raises(ConfigError, match="reads a local model's probabilities"):
        reward_from(argparse.Namespace(reward="judge-probs:http://127.0.0.1:9", reward_head=None, batch_size=4))
    with pytest.raises(ConfigError, match="batch_size"):
        ProbabilityJudgeReward(batch_size=0)
