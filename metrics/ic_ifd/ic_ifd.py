"""IC-IFD: instruction-complexity-aware Instruction-Following Difficulty, computed by hfevol."""

import evaluate

from hfevol.scoring.metric import metric_info, metric_results

_CITATION = """\
@article{hui2024smaller,
  title   = {Smaller Language Models Are Better Instruction Evolvers},
  author  = {Hui, Tingfeng and Zhao, Lulu and Dong, Guanting and Zhang, Yaqi and Zhou, Hua and Su, Sen},
  journal = {arXiv preprint arXiv:2412.11231},
  year    = {2024}
}
"""

_DESCRIPTION = """\
IC-IFD judges instruction data without training. A causal language model reads each
(instruction, answer) pair and three mean token losses come out: L(Q) over the
instruction, L(A|Q) over the answer after the instruction, and L(A) over the answer
alone. IFD = L(A|Q) / L(A) says how much the instruction helps predict the answer;
IC-IFD = L(A|Q) / (L(Q) * L(A)) also accounts for how hard the instruction itself is.
Higher is better: the paper keeps the top 25% of rows by IC-IFD. The texts and token
spans reproduce the paper's reference script; hfevol batches it exactly, in two forward
passes per row.
"""

_KWARGS_DESCRIPTION = """
Args:
    instructions (`list` of `str`): the instructions.
    responses (`list` of `str`): one answer per instruction.
    inputs (`list` of `str`, optional): context appended to each instruction after a newline.
    model_id (`str`): the scoring model: "embedded" (SmolLM2-135M-Instruct, the default),
        a Hub id or a local folder. It loads once per process.
    batch_size (`int`): sequences per forward pass (default 16).
    mode (`str`): "reference" (the paper's plain-text construction, the default) or
        "chat" (the model's chat template).
    ifd_form (`str`): "loss_ratio" (default) or "ppl_ratio" (Superfiltering's exp(L(A|Q) - L(A))).
    ic_ifd_form (`str`): "ratio" (the paper's Eq. 2, default) or "multiplicative" (L(A|Q) * L(Q) / L(A)).
    max_length (`int`, optional): truncate longer sequences (default: the model's context).
    device (`str`), dtype (`str`): where and in what precision the model runs ("auto").
Returns:
    ic_ifd (`list` of `float`): per-row IC-IFD; NaN where undefined.
    ifd (`list` of `float`): per-row IFD; NaN where undefined.
    loss_q, loss_a_given_q, loss_a (`list` of `float`): the per-row mean token losses.
    mean_ic_ifd, mean_ifd (`float`): arithmetic means over the rows where the value is defined.
    undefined (`int`): rows with an undefined score (an empty text, no scored token, a zero loss).
    reasons (`list`): why each such row is undefined ("" for the others).
Examples:
    >>> import evaluate
    >>> ic_ifd = evaluate.load("metrics/ic_ifd")
    >>> results = ic_ifd.compute(
    ...     instructions=["Name the largest planet in the Solar System.", "Add the numbers."],
    ...     responses=["Jupiter is the largest planet in the Solar System.", "The sum is 12."],
    ...     inputs=["", "5 and 7"],
    ...     model_id="embedded",
    ... )
    >>> sorted(results)
    ['ic_ifd', 'ifd', 'loss_a', 'loss_a_given_q', 'loss_q', 'mean_ic_ifd', 'mean_ifd', 'reasons', 'undefined']
    >>> r = {k: v[0] for k, v in results.items() if isinstance(v, list)}
    >>> abs(r["ic_ifd"] - r["loss_a_given_q"] / (r["loss_q"] * r["loss_a"])) < 1e-12
    True
    >>> abs(results["mean_ic_ifd"] - sum(results["ic_ifd"]) / 2) < 1e-12, results["undefined"]
    (True, 0)
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ICIFD(evaluate.Metric):
    def _info(self):
        return metric_info(_DESCRIPTION, _CITATION, _KWARGS_DESCRIPTION, "https://arxiv.org/abs/2412.11231")

    def _compute(self, instructions, responses, inputs=None, model_id="embedded", batch_size=16, **options):
        return metric_results("ic_ifd", instructions, responses, inputs, model_id=model_id, batch_size=batch_size, **options)
