"""The wheel ships the top-level cards/ and metrics/ folders inside the package."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_carries_cards_and_metrics(tmp_path):
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(ROOT), "-w", str(tmp_path)], capture_output=True, text=True, timeout=600
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = tmp_path.glob("hfevol-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "hfevol/_cards/dataset_card.md.jinja" in names
    assert "hfevol/_metrics/README.md" in names
    assert "hfevol/testing/tgi_server.py" in names and "hfevol/publish/release.py" in names
    assert not any(name.startswith(("tests/", "hfevol/testing/hub")) for name in names)  # the test Hub stays with the tests
    assert {"hfevol/data/autoif_seed_constraints.txt", "hfevol/data/autoif_queries.jsonl", "hfevol/prompts/autoif/verifier.jinja"} <= names
    assert "hfevol/py.typed" in names  # type checkers read the package's annotations
    (meta,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    requires = [line.split(":", 1)[1].strip() for line in zipfile.ZipFile(wheel).read(meta).decode().splitlines() if line.startswith("Requires-Dist:")]
    base = {re.split(r"[ <>=;\[]", r)[0].lower() for r in requires if "extra ==" not in r}
    assert "datasets" in base and not base & {"torch", "transformers", "accelerate", "gguf", "safetensors", "evaluate", "matplotlib"}
    assert any(r.startswith("torch") and "extra == 'local'" in r.replace('"', "'") for r in requires)


def test_card_template_is_found_in_the_checkout():
    from hfevol.paths import shipped_dir

    assert (shipped_dir("cards") / "dataset_card.md.jinja").is_file()
