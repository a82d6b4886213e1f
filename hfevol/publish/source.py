"""Reading an hfevol output folder as the content of a release (see the package docstring)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DatasetNotFoundError, EmptyDatasetError, NotHfevolOutputError
from ..io import RUN_FILE

if TYPE_CHECKING:
    import pyarrow as pa

SCORE_COLUMNS: tuple[str, ...] = (
    "ic_ifd", "ifd", "ifd_superfiltering", "loss_q", "loss_a", "loss_a_given_q",
    "reward", "car", "difficulty_score", "mnd", "top1_prob",
)  # fmt: skip
"""Numeric columns summarised and plotted in the card (besides any ``*_score`` column)."""

CAR_TABLES: tuple[str, ...] = ("car.csv", "car.md")
COMPARISON_FILES: tuple[str, ...] = ("evolvers.csv", "evolvers.md", "evolver_difficulty.png", "evolver_mnd.png", "evolver_top1.png", "evolver_ic_ifd.png")
"""What ``hfevol compare-evolvers`` (and ``analyze``) write beside the data (:data:`hfevol.analysis.compare.COMPARISON_FILES`): shipped, and shown in the card."""
"""Files at the top of an output folder that hold the CAR table."""

HIDDEN_PREFIXES = (".", "_")
_SPLIT = re.compile(r"^\w+(\.\w+)*$")
_NATURAL = re.compile(r"(\d+)")


@dataclass(frozen=True)
class DataFile:
    """One parquet file of the release."""

    path_in_repo: str
    local: Path
    config: str
    split: str
    rows: int


@dataclass
class ReleaseSource:
    """An hfevol output folder, checked: its run record, data files and extra tables."""

    folder: Path
    run: dict[str, Any]
    files: list[DataFile]
    tables: dict[str, Path] = field(default_factory=dict)
    """Extra files shipped as they are (the CAR table), by path in the repo."""

    @property
    def configs(self) -> dict[str, dict[str, list[DataFile]]]:
        """config -> split -> files, configs in natural order."""
        out: dict[str, dict[str, list[DataFile]]] = {}
        for f in sorted(self.files, key=lambda f: (natural_key(f.config), f.split, f.path_in_repo)):
            out.setdefault(f.config, {}).setdefault(f.split, []).append(f)
        return out

    @property
    def default_config(self) -> str:
        named = self.run.get("default_config")
        return named if named in self.configs else list(self.configs)[-1]

    def config_rows(self, config: str) -> int:
        return sum(f.rows for files in self.configs[config].values() for f in files)

    def table(self, config: str | None = None) -> "pa.Table":
        """All rows of one config (the default one unless named), splits concatenated."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        files = [f for fs in self.configs[config or self.default_config].values() for f in fs]
        return pa.concat_tables([pq.read_table(f.local) for f in files], promote_options="default")

    def payload(self) -> dict[str, Path]:
        """The files whose content defines the release: data, run record, tables (not the card)."""
        out = {f.path_in_repo: f.local for f in self.files}
        out[RUN_FILE] = self.folder / RUN_FILE
        out.update(self.tables)
        return out


def content_name(rel: Path, path: Path) -> str:
    """``<config>/<split>.parquet`` as it is named in a release: ``<config>/<split>-<digest>.parquet``.

    The digest (12 hex digits of the file's SHA-256) makes the name follow the content. This
    matters for local release folders: ``datasets`` keys its cache for a local folder whose
    card lists ``configs`` on the listed paths, not on the files' content, so with fixed
    names ``load_dataset(<folder>)`` would serve the previous release's rows after a
    re-publish. Identical content keeps its name, so an unchanged re-publish stays unchanged.
    """
    from .target import file_sha256

    return rel.with_name(f"{rel.stem}-{file_sha256(path)[:12]}{rel.suffix}").as_posix()


def natural_key(text: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in _NATURAL.split(text)]


def read_source(folder: str | Path) -> ReleaseSource:
    """Check that ``folder`` is an hfevol output with rows, and describe it.

    Raises:
        DatasetNotFoundError: the folder does not exist.
        NotHfevolOutputError: no valid ``hfevol_run.json``, no parquet under ``data/``, an
            unreadable data file or a layout deeper than ``data/<config>/<split>.parquet``.
        EmptyDatasetError: the data, or one of its configs, has no rows.
    """
    import pyarrow.parquet as pq

    root = Path(folder).expanduser()
    if not root.is_dir():
        raise DatasetNotFoundError(f"output folder {str(folder)!r} does not exist", hint="give the --out folder of an hfevol run.")
    hint = "publish a folder written by an hfevol run (e.g. `hfevol evolve --out DIR`)."
    run_file = root / RUN_FILE
    if not run_file.is_file():
        raise NotHfevolOutputError(f"{str(folder)!r} is not an hfevol output: it has no {RUN_FILE}", hint=hint)
    try:
        run = json.loads(run_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise NotHfevolOutputError(f"{run_file} is not valid JSON: {exc}", hint=hint) from exc
    if not isinstance(run, dict) or not isinstance(run.get("stages"), list):
        raise NotHfevolOutputError(f"{run_file} is not an hfevol run record: it has no 'stages' list", hint=hint)
    files = []
    for path in sorted((root / "data").rglob("*.parquet")):
        rel = path.relative_to(root / "data")
        if any(part.startswith(HIDDEN_PREFIXES) for part in rel.parts):
            continue
        if len(rel.parts) > 2:
            raise NotHfevolOutputError(f"data file {rel} is nested too deep", hint="use data/<split>.parquet or data/<config>/<split>.parquet.")
        config = rel.parts[0] if len(rel.parts) == 2 else "default"
        split = path.stem.split("-")[0]
        if not _SPLIT.match(split) or not _SPLIT.match(config):
            raise NotHfevolOutputError(f"data file {rel}: {config!r}/{split!r} is not a valid config/split name", hint="use letters, digits and underscores.")
        try:
            rows = pq.read_metadata(path).num_rows
        except Exception as exc:
            raise NotHfevolOutputError(f"data file {path} is not a readable parquet file: {exc}") from exc
        files.append(DataFile(f"data/{content_name(rel, path)}", path, config, split, rows))
    if not files:
        raise NotHfevolOutputError(f"{str(folder)!r} has no data: no parquet file under data/", hint=hint)
    source = ReleaseSource(folder=root, run=run, files=files, tables={n: root / n for n in (*CAR_TABLES, *COMPARISON_FILES) if (root / n).is_file()})
    for config in source.configs:
        if source.config_rows(config) == 0:
            where = "the dataset" if len(source.configs) == 1 else f"config {config!r}"
            raise EmptyDatasetError(f"{where} in {str(folder)!r} has no rows; there is nothing to publish", hint="check the run that wrote it.")
    return source
