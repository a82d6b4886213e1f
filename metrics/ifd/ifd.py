"""IFD: Instruction-Following Difficulty, computed by hfevol."""

import evaluate

from hfevol.scoring.metric import metric_info, metric_results

_CITATION = """\
@inproceedings{li2024quantity,
  title     = {From Quantity to Quality: Boosting {LLM} Performance with Self-Guided Data Selection for Instruction Tuning},
  author    = {Li, Ming and Zhang, Yong and Li, Zhitao and Chen, Jiuhai and Chen, Lichang and Cheng, Ning and Wang, Jianzong and Zhou, Tianyi and Xiao, Jing},
  booktitle = {Proceedings of NAACL},
  year      = {2024}
}
"""

_DESCRIPTION = """\
IFD (Instruction-Following Difficulty, from Cherry LLM) compares how well a causal
language model predicts an answer with and without its instruction: IFD = L(A|Q) / L(A),
a ratio of mean token losses. Near 1, the instruction barely helps; above 1, it misleads
(Cherry LLM drops such rows). hfevol computes it with the same construction as the
ic_ifd metric, exactly batched.
"""

_KWARGS_DESCRIPTION = """
Args:
    instructions (`list` of `str`): the instructions.
    responses (`list` of `str`): one answer per instruction.
    inputs (`list` of `str`, optional): context appended to each instruction after a newline.
    model_id (`str`): "embedded" (the default), a Hub id or a local folder.
    batch_size (`int`): sequences per forward pass (default 16).
    mode (`str`): "reference" (default) or "chat".
    ifd_form (`str`): "loss_ratio" (default) or "ppl_ratio" (Superfiltering's exp(L(A|Q) - L(A))).
    max_length (`int`, optional), device (`str`), dtype (`str`): as for ic_ifd.
Returns:
    ifd (`list` of `float`): per-row IFD; NaN where undefined.
    loss_a_given_q, loss_a (`list` of `float`): the per-row mean token losses.
    mean_ifd (`float`): arithmetic mean over the rows where IFD is defined.
    undefined (`int`), reasons (`list`): rows without a defined score, and why.
Examples:
    >>> import evaluate
    >>> ifd = evaluate.load("metrics/ifd")
    >>> results = ifd.compute(instructions=["Say hello in French."], responses=["Bonjour !"], model_id="embedded")
    >>> sorted(results)
    ['ifd', 'loss_a', 'loss_a_given_q', 'mean_ifd', 'reasons', 'undefined']
    >>> abs(results["ifd"][0] - results["loss_a_given_q"][0] / results["loss_a"][0]) < 1e-12
    True
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class IFD(evaluate.Metric):
    def _info(self):
        return metric_info(_DESCRIPTION, _CITATION, _KWARGS_DESCRIPTION, "https://arxiv.org/abs/2308.12032")

    def _compute(self, instructions, responses, inputs=None, model_id="embedded", batch_size=16, **options):
        return metric_results("ifd", instructions, responses, inputs, model_id=model_id, batch_size=batch_size, **options)
