"""What a release version and a repo id may look like.

A version is an optional ``v`` followed by a PEP 440 version (``v1``, ``v1.2``, ``1.2.0``,
``v2.0rc1``, ``1.0.post1``) or a semantic version (``1.2.0-rc.1``, ``1.0.0+build.5``),
at most 64 characters of ``[0-9A-Za-z.+-]``. Versions sort by their PEP 440 value.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import ConfigError

_VERSION_CHARS = re.compile(r"^v?[0-9][0-9A-Za-z.+-]{0,62}$")
_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$")


def check_version(version: Any) -> str:
    """Return ``version`` if it is a valid release version, else raise :class:`ConfigError`."""
    from packaging.version import InvalidVersion, Version

    hint = "use e.g. v1, v1.2, 1.2.0 or 1.2.0-rc.1 (PEP 440 or semantic versioning, optional leading 'v')."
    if not isinstance(version, str) or not _VERSION_CHARS.match(version) or version.endswith((".", "-", "+")):
        raise ConfigError(f"version {version!r} is not a valid release version", hint=hint)
    bare = version[1:] if version.startswith("v") else version
    if _SEMVER.match(bare):
        return version
    try:
        Version(bare)
    except InvalidVersion:
        raise ConfigError(f"version {version!r} is not a valid release version", hint=hint) from None
    return version


def version_key(version: str) -> tuple[int, Any, str]:
    """Sort key: valid versions by value, anything else (tags made by hand) after them, by name."""
    from packaging.version import InvalidVersion, Version

    bare = version[1:] if version.startswith("v") else version
    try:
        return (0, Version(bare), version)
    except InvalidVersion:
        return (1, None, version)


def check_repo_id(repo_id: Any) -> str:
    """``namespace/name`` as the Hub accepts it, checked with ``huggingface_hub``'s validator."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    hint = "give the Hub dataset as 'user/name' or 'org/name' (letters, digits, '-', '_', '.')."
    if not isinstance(repo_id, str) or repo_id.count("/") != 1:
        raise ConfigError(f"repo id {repo_id!r} must be 'namespace/name'", hint=hint)
    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise ConfigError(f"repo id {repo_id!r} is not valid: {str(exc).splitlines()[0]}", hint=hint) from None
    return repo_id
