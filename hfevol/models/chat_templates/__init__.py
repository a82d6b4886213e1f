"""Named chat templates for models that ship none (Jinja files in this folder).

- ``plain``: ``User: ...`` / ``Assistant: ...`` paragraphs, the assistant turn closed by the
  end-of-sequence token; the generation prompt is ``Assistant:``. hfevol gives it to the
  embedded Gemma-3-270M base model, and the CAR student loss can format rows with it.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import ConfigError

_DIR = Path(__file__).resolve().parent


def names() -> list[str]:
    return sorted(p.stem for p in _DIR.glob("*.jinja"))


def chat_template(name: str) -> str:
    """The Jinja source of the named template (what ``tokenizer.chat_template`` takes)."""
    path = _DIR / f"{name}.jinja"
    if not path.is_file():
        raise ConfigError(f"no chat template named {name!r}", hint=f"known: {', '.join(names())}.")
    return path.read_text()


STOP_STRINGS: dict[str, tuple[str, ...]] = {"plain": ("\nUser:",)}
"""Where a base model's generation should stop when it keeps writing the next turn itself."""
