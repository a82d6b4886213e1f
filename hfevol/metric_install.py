"""Make ``evaluate.load("ic_ifd")`` find hfevol's metrics by their bare names, offline.

``evaluate`` has no plugin mechanism. For a bare name it tries ``./name.py`` and
``./name/name.py``, then the Hub Space ``evaluate-metric/name``, and when that fails
(offline, or no such Space) the newest copy in its modules cache::

    $HF_MODULES_CACHE/evaluate_modules/metrics/evaluate-metric--<name>/<64-hex hash>/<name>.py

:func:`install_metrics` writes hfevol's shipped metric folders there, in that layout (the
hash is the SHA-256 of the module file, so reinstalling the same version is a no-op and a
new version becomes the newest copy). The cache root is the one ``evaluate`` itself
computes from ``HF_MODULES_CACHE`` / ``HF_HOME``.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from collections.abc import Iterable
from pathlib import Path

from .errors import ConfigError, MissingDependencyError
from .extras import install_line
from .paths import shipped_dir

logger = logging.getLogger(__name__)

CANONICAL_PREFIX = "evaluate-metric--"
"""How evaluate names a canonical metric's folder in its modules cache."""


def shipped_metrics() -> list[str]:
    """Names of the metrics hfevol ships (folders of ``metrics/`` holding ``<name>/<name>.py``)."""
    root = shipped_dir("metrics")
    return sorted(p.name for p in root.iterdir() if (p / f"{p.name}.py").is_file())


def modules_cache() -> Path:
    """The ``evaluate_modules`` folder that ``evaluate.load`` reads in this process."""
    try:
        from evaluate.loading import init_dynamic_modules
    except ImportError as exc:
        raise MissingDependencyError("evaluate", "installing the evaluate metrics", install_line("metrics")) from exc
    return Path(init_dynamic_modules())


def install_metrics(names: Iterable[str] | None = None) -> dict[str, Path]:
    """Copy the shipped metrics into evaluate's modules cache; returns each module file's path.

    Raises:
        ConfigError: a name that hfevol does not ship.
    """
    available = shipped_metrics()
    chosen = list(names) if names is not None else available
    unknown = [n for n in chosen if n not in available]
    if unknown:
        raise ConfigError(f"hfevol ships no metric named {', '.join(map(repr, unknown))}", hint=f"available: {', '.join(available)}.")
    cache = modules_cache()
    installed = {}
    for name in chosen:
        source = shipped_dir("metrics") / name
        module = source / f"{name}.py"
        digest = hashlib.sha256(module.read_bytes()).hexdigest()
        folder = cache / "metrics" / f"{CANONICAL_PREFIX}{name}"
        target = folder / digest
        target.mkdir(parents=True, exist_ok=True)
        for package in (cache / "metrics", folder, target):  # each level must import as a package
            (package / "__init__.py").touch(exist_ok=True)
        for path in source.iterdir():
            if path.is_file() and path.suffix in (".py", ".md", ".txt"):
                shutil.copyfile(path, target / path.name)
        module_copy = target / f"{name}.py"
        module_copy.touch()  # newest mtime: evaluate picks the most recently modified copy
        installed[name] = module_copy
        logger.info("installed metric %s into %s", name, target)
    return installed
