"""Prompt templates: Jinja files shipped with the package, each with a content version."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any

_DIR = Path(__file__).resolve().parent


@cache
def _environment() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_DIR)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        autoescape=False,
    )


def template_names(folder: str) -> list[str]:
    """Names of the public templates in ``folder`` (files starting with ``_`` are frames)."""
    return sorted(p.stem for p in (_DIR / folder).glob("*.jinja") if not p.name.startswith("_"))


def render(name: str, **values: Any) -> str:
    """Render ``name`` (``"folder/template"``, no extension) with ``values``."""
    return _environment().get_template(f"{name}.jinja").render(**values).strip()


@cache
def version(name: str) -> str:
    """A short hash of the template and every frame it extends.

    It changes whenever the wording changes, so it can go into metadata and cache keys.
    """
    env = _environment()
    digest = hashlib.sha256()
    pending = [f"{name}.jinja"]
    seen: set[str] = set()
    while pending:
        file = pending.pop()
        if file in seen:
            continue
        seen.add(file)
        source = env.loader.get_source(env, file)[0]
        digest.update(file.encode() + b"\0" + source.encode() + b"\0")
        ast = env.parse(source)
        import jinja2.meta

        pending.extend(t for t in jinja2.meta.find_referenced_templates(ast) if t)
    return digest.hexdigest()[:12]
