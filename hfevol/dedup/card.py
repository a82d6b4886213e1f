"""The dataset card's "Duplicates and contamination" section: its data, from the run record's stages.

:func:`flag_sections` returns the template's ``dedup`` and ``contamination`` entries (empty
lists when no such stage ran); ``cards/dataset_card.md.jinja`` renders them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..record import RunRecord


def _shown(source: Any) -> str:
    """A Hub id as is, a local path by its file name only (the card never shows local folders)."""
    text = str(source)
    return Path(text).name if text.startswith(("/", ".", "~")) or Path(text).exists() else text


def flag_sections(run: "RunRecord") -> dict[str, list[dict[str, Any]]]:
    """``{"dedup": [...], "contamination": [...]}``: one entry per ``dedup`` / ``decontaminate`` stage of ``run``."""
    dedup: list[dict[str, Any]] = []
    contamination: list[dict[str, Any]] = []
    for stage in (s.to_json() for s in run.stages):
        if stage.get("stage") == "dedup":
            near = stage.get("near") or {}
            semantic = stage.get("semantic") or None
            how = [f"exact after normalisation ({stage.get('normalisation', '-')})",
                   f"MinHash + LSH over word {near.get('ngram')}-grams with {near.get('library', '-')}, estimated Jaccard >= {near.get('threshold')}"]  # fmt: skip
            if semantic:
                how.append(f"embeddings ({(semantic.get('embedder') or {}).get('model', '-')}), cosine >= {semantic.get('threshold')}")
            dedup.append({"rows": stage.get("rows"), "clusters": stage.get("clusters"), "kept": stage.get("kept"), "flagged": stage.get("flagged") or {},
                          "how": how, "order": stage.get("order"), "text": stage.get("text")})  # fmt: skip
        elif stage.get("stage") == "decontaminate":
            ngram = stage.get("ngram") or {}
            semantic = stage.get("semantic") or None
            text = f"word {ngram.get('n')}-gram overlap of prompts ({stage.get('text')})"
            if ngram.get("min_overlap"):
                text += f", shared share >= {ngram['min_overlap']}"
            if semantic:
                text += f"; embeddings ({(semantic.get('embedder') or {}).get('model', '-')}), cosine >= {semantic.get('threshold')}"
            contamination.append(
                {
                    "rows": stage.get("rows"),
                    "flagged": stage.get("flagged"),
                    "how": text,
                    "benchmarks": [{**b, "source": _shown(b.get("source"))} for b in stage.get("benchmarks") or []],
                }
            )
    return {"dedup": dedup, "contamination": contamination}
