"""Where hfevol keeps its cache and finds the files it ships."""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def cache_home() -> Path:
    """The folder for hfevol's caches (converted models, request caches).

    ``$HFEVOL_HOME`` wins; otherwise ``$HF_HOME/hfevol``; otherwise
    ``$XDG_CACHE_HOME/huggingface/hfevol`` (``~/.cache/huggingface/hfevol``), next to
    the other Hugging Face caches.
    """
    if os.environ.get("HFEVOL_HOME"):
        return Path(os.environ["HFEVOL_HOME"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hfevol"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "huggingface" / "hfevol"


def shipped_dir(name: str) -> Path:
    """A top-level folder of the repository (``cards``, ``metrics``) that ships with hfevol.

    A wheel carries it inside the package as ``hfevol/_<name>``; a source checkout or an
    editable install has it beside the package.
    """
    for candidate in (_PACKAGE_DIR / f"_{name}", _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"hfevol's {name!r} folder is not installed beside {_PACKAGE_DIR}")


def package_file(*parts: str) -> Path:
    """A data file inside the package (prompts, the built-in seed sample)."""
    return _PACKAGE_DIR.joinpath(*parts)
