"""Helpers for the publishing tests: hfevol output folders, and the test Hub wired into the real clients."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hub import HubServer

TOKEN = "hf_tEsT7kQz9LeakCanary0xB33F"
"""A distinctive fake token: the leak test searches for it everywhere."""
USER = "alice"


def make_output(
    folder: Path,
    n: int = 6,
    *,
    configs: list[str] | None = None,
    scores: bool = True,
    car: bool = False,
    tag: str = "a",
    **run_extra: Any,
) -> Path:
    """An hfevol output folder as ``hfevol evolve`` writes it (data/<split>.parquet + hfevol_run.json).

    ``configs`` writes data/<config>/train.parquet instead; ``tag`` varies the text so that
    two folders hold different data.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from hfevol.io import RUN_FILE

    rows = []
    for i in range(n):
        ok = i % 3 != 0
        row = {
            "instruction": f"Explain topic {i} ({tag}).",
            "parent_instruction": f"Explain topic {i} ({tag}).",
            "evolved_instruction": f"Explain topic {i} ({tag}) in three steps." if ok else None,
            "evol_operation": "add_constraints",
            "evol_status": "ok" if ok else "failed",
            "evol_reason": None if ok else "the model returned an empty text",
        }
        if scores:
            row["ic_ifd"] = 0.25 + i / 100
            row["ifd"] = 0.75 + i / 200
        rows.append(row)
    table = pa.Table.from_pylist(rows)
    for config in configs or [None]:
        data = folder / "data" / (config or "")
        data.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, data / "train.parquet")
    run = {
        "hfevol_version": "0.1.0",
        "source": "builtin",
        "rows": n,
        "stages": [{"stage": "evol_instruct", "backend": {"backend": "transformers", "model": "embedded"}, "operations": ["add_constraints"],
                    "round": 1, "sampling": {"temperature": 0.7, "top_p": 0.95, "max_new_tokens": 32}, "seed": 0,
                    "prompt_versions": {"add_constraints": "abc123"}}],
        **run_extra,
    }  # fmt: skip
    (folder / RUN_FILE).write_text(json.dumps(run, indent=2))
    if car:
        (folder / "car.csv").write_text("generator,reward,loss,car\nmodel-a,0.61,1.20,0.45\nmodel-b,0.55,0.90,0.47\n")
    return folder


def point_clients_at(hub: HubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Set HF_ENDPOINT & co., and the copies that huggingface_hub and datasets took at import time."""
    import datasets.config
    import huggingface_hub.constants as hc

    for key, value in hub.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(hc, "ENDPOINT", hub.url)
    monkeypatch.setattr(hc, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hc, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(datasets.config, "HF_ENDPOINT", hub.url)
    monkeypatch.setattr(datasets.config, "HUB_DATASETS_URL", hub.url + "/datasets/{repo_id}/resolve/{revision}/{path}")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    """A running test Hub that knows TOKEN as alice (member of org 'lab'), with HF_TOKEN set."""
    server = HubServer(tmp_path / "hub-store", tokens={TOKEN: USER, "hf_other_user": "bob"}, orgs={"lab": [USER]}).start()
    point_clients_at(server, monkeypatch)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    try:
        yield server
    finally:
        server.stop()
