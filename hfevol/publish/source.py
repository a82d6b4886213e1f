"""Reading an hfevol output folder as the content of a release (see the package docstring)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DatasetNotFoundError, EmptyDatasetError, NotHfevolOutputError
from ..record import RUN_FILE, RunRecord

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
    run: RunRecord
    files: list[DataFile]
    tables: dict[str, Path] = field(default_factory=dict)
    """Extra files shipped as they are (the CAR table), by path in the repo."""
    _tables: dict[str, "pa.Table"] = field(default_factory=dict, repr=False)

    @property
    def configs(self) -> dict[str, dict[str, list[DataFile]]]:
        """config -> split -> files, configs in natural order."""
        out: dict[str, dict[str, list[DataFile]]] = {}
        for f in sorted(self.files, key=lambda f: (natural_key(f.config), f.split, f.path_in_repo)):
            out.setdefault(f.config, {}).setdefault(f.split, []).append(f)
        return out

    @property
    def default_config(self) -> str:
        """The record's ``default_config`` if it names one, else the config with the most kept rows
        (every ``*_status`` column ``ok``), the later one on a tie: the one a user would train on."""
        if self.run.default_config in self.configs:
            return self.run.default_config
        best = None
        for config in self.configs:  # natural order: on a tie the later config wins
            if best is None or self.kept_rows(config) >= self.kept_rows(best):
                best = config
        assert best is not None
        return best

    def kept_rows(self, config: str) -> int:
        """Rows of ``config`` whose every status column is ``ok`` (all rows when there is none)."""
        import pyarrow.compute as pc

        table = self.table(config)
        columns = status_columns(table)
        if not columns:
            return table.num_rows
        mask = None
        for name in columns:
            ok = pc.fill_null(pc.equal(table.column(name), "ok"), False)
            mask = ok if mask is None else pc.and_(mask, ok)
        return int(pc.sum(mask).as_py() or 0)

    def config_rows(self, config: str) -> int:
        return sum(f.rows for files in self.configs[config].values() for f in files)

    def table(self, config: str | None = None) -> "pa.Table":
        """All rows of one config (the default one unless named), splits concatenated."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        name = config or self.default_config
        cached = self._tables.get(name)
        if cached is None:
            files = [f for fs in self.configs[name].values() for f in fs]
            cached = self._tables[name] = pa.concat_tables([pq.read_table(f.local) for f in files], promote_options="default")
        return cached

    def payload(self) -> dict[str, Path]:
        """The files whose content defines the release: data, run record, tables (not the card)."""
        out = {f.path_in_repo: f.local for f in self.files}
        out[RUN_FILE] = self.folder / RUN_FILE
        out.update(self.tables)
        return out


def status_columns(table: "pa.Table") -> list[str]:
    """The ``<name>_status`` columns of strings (``evol_status``, ``output_status``, ``score_status`` ...)."""
    import pyarrow.types as pt

    return [
        n for n in table.column_names if n.endswith("_status") and (pt.is_string(table.schema.field(n).type) or pt.is_large_string(table.schema.field(n).type))
    ]


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


def release_configs(paths: list[str] | dict[str, Path]) -> list[str]:
    """The configs of a release's files (``data/<split>...`` is ``default``), in natural order."""
    names = {p.split("/")[1] if p.count("/") == 2 else "default" for p in paths if p.startswith("data/") and p.endswith(".parquet")}
    return sorted(names, key=natural_key)


def natural_key(text: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in _NATURAL.split(text)]


def read_source(folder: str | Path) -> ReleaseSource:
    """Check that ``folder`` is an hfevol output with rows, and describe it.

    Raises:
        DatasetNotFoundError: the folder does not exist.
        NotHfevolOutputError: a file instead of a folder, no valid ``hfevol_run.json``, no parquet under ``data/``, an
            unreadable data file or a layout deeper than ``data/<config>/<split>.parquet``.
        EmptyDatasetError: the data, or one of its configs, has no rows.
    """
    import pyarrow.parquet as pq

    root = Path(folder).expanduser()
    if root.is_file():
        raise NotHfevolOutputError(
            f"{str(folder)!r} is a file, not an output folder",
            hint=f"give the folder that holds {RUN_FILE} and data/ (the --out folder of an hfevol run), not a file in it.",
        )
    if not root.is_dir():
        raise DatasetNotFoundError(f"output folder {str(folder)!r} does not exist", hint="give the --out folder of an hfevol run.")
    hint = "publish a folder written by an hfevol run (e.g. `hfevol evolve --out DIR`)."
    if not (root / RUN_FILE).is_file():
        raise NotHfevolOutputError(f"{str(folder)!r} is not an hfevol output: it has no {RUN_FILE}", hint=hint)
    run = RunRecord.read(root)
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
    check_files(root, run, [f.local for f in files])
    source = ReleaseSource(folder=root, run=run, files=files, tables={n: root / n for n in (*CAR_TABLES, *COMPARISON_FILES) if (root / n).is_file()})
    for config in source.configs:
        if source.config_rows(config) == 0:
            where = "the dataset" if len(source.configs) == 1 else f"config {config!r}"
            raise EmptyDatasetError(f"{where} in {str(folder)!r} has no rows; there is nothing to publish", hint="check the run that wrote it.")
    return source


def check_files(root: Path, run: RunRecord, paths: list[Path]) -> None:
    """Refuse data files that differ from the ones the run record lists (a record without a file list, written
    before hfevol listed them, is not checked).

    Raises:
        NotHfevolOutputError: a data file that the record does not list, lists with another digest, or lists but is missing.
    """
    from .target import file_sha256

    if not run.files:
        return
    command = run.last_command.name if run.last_command else "the hfevol command"
    hint = f"the folder is not as `hfevol {command}` wrote it; run that command again."
    listed = {f.path: f for f in run.files}
    for path in paths:
        rel = path.relative_to(root).as_posix()
        entry = listed.pop(rel, None)
        if entry is None:
            raise NotHfevolOutputError(f"data file {rel} in {root} is not listed in its {RUN_FILE}", hint=hint)
        if file_sha256(path) != entry.sha256:
            raise NotHfevolOutputError(f"data file {rel} in {root} does not match its {RUN_FILE} (its sha256 differs)", hint=hint)
    if listed:
        raise NotHfevolOutputError(f"data file {sorted(listed)[0]}, listed in the {RUN_FILE} of {root}, is missing", hint=hint)
