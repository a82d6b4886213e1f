"""Every error hfevol raises on purpose.

Catch :class:`HfevolError` to handle all of them. Where an error is about a bad value it
also derives from the matching builtin, so ``except ValueError`` keeps working::

    HfevolError
    ├── ConfigError (ValueError)              an option has a bad value
    ├── DataError (ValueError)                the data does not fit what a transform reads
    │   ├── MissingColumnError (KeyError)     a column the transform reads is absent
    │   ├── InvalidRowError                   one row cannot be processed (names row and column)
    │   ├── NotHfevolOutputError              a folder to publish is not an hfevol output
    │   ├── EmptyDatasetError                 a dataset has no rows
    │   └── FormatError                       rows are in several layouts at once (Alpaca, ShareGPT, messages)
    ├── DatasetNotFoundError (FileNotFoundError)
    ├── ModelError
    │   ├── ModelNotFoundError (FileNotFoundError)
    │   └── ModelLoadError                    the files exist but transformers cannot load them
    ├── BackendError                          a generation backend failed
    │   ├── EndpointError                     an inference server failed (cause, status, retryable)
    │   │   ├── EndpointUnreachableError (ConnectionError)   no connection could be made
    │   │   └── AuthenticationError (PermissionError)        the server refused the token: never retried
    │   └── TokenMismatchError (ValueError)   a server scored other tokens than its /tokenize gave
    ├── CacheError                            the request cache file cannot be used
    ├── LockedError                           another command holds the folder's lock
    ├── OutputError (OSError)                 an output folder cannot be written (not a folder, read-only, full disk)
    ├── SandboxUnavailableError               the verifier sandbox cannot start at the level asked for
    ├── PublishError                          a release could not be made
    │   ├── MissingTokenError (PermissionError)   no Hub token in the environment or login
    │   ├── ReleaseExistsError (FileExistsError)  the version is already released
    │   └── UploadError (ConnectionError)         the Hub failed or the network dropped mid-push
    └── MissingDependencyError (ImportError)  an optional package is not installed

Every error carries an optional one-line ``hint`` that says what to do next; it is part of
``str(error)`` so that the CLI prints it on the same screen.
"""

from __future__ import annotations

from typing import Literal

EndpointCause = Literal["rate_limited", "overloaded", "server_error", "timeout", "connection", "malformed", "rejected", "auth", "not_found", "unsupported"]
"""Why an endpoint request failed (:attr:`EndpointError.cause`)."""


class HfevolError(Exception):
    """Base class of every error raised by hfevol."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message)

    def __str__(self) -> str:
        return f"{self.message}\nHint: {self.hint}" if self.hint else self.message


class ConfigError(HfevolError, ValueError):
    """An option was given a value hfevol cannot use."""


class DataError(HfevolError, ValueError):
    """The dataset does not have the shape a transform needs."""


class MissingColumnError(DataError, KeyError):
    """A column that a transform reads is not in the dataset."""

    def __init__(self, column: str, available: list[str], *, hint: str | None = None) -> None:
        self.column = column
        self.available = list(available)
        shown = ", ".join(repr(c) for c in self.available) or "none"
        super().__init__(
            f"column {column!r} is missing; the dataset has: {shown}",
            hint=hint or "rename the column (ds.rename_column) or point the transform at another one.",
        )

    __str__ = HfevolError.__str__  # KeyError would otherwise quote the whole message


class InvalidRowError(DataError):
    """One row holds a value the transform cannot use."""

    def __init__(self, row: int | str, column: str | None, problem: str, *, hint: str | None = None) -> None:
        self.row = row
        self.column = column
        self.problem = problem
        super().__init__(f"row {row}, column {column!r}: {problem}", hint=hint)


class EmptyDatasetError(DataError):
    """A dataset has no rows, so there is nothing to process."""


class FormatError(DataError):
    """The dataset mixes layouts (Alpaca, ShareGPT, messages) from row to row."""


class DatasetNotFoundError(HfevolError, FileNotFoundError):
    """A dataset path or id could not be found."""


class ModelError(HfevolError):
    """A model could not be found or loaded."""


class ModelNotFoundError(ModelError, FileNotFoundError):
    """A model path does not exist, or a model id cannot be resolved."""


class ModelLoadError(ModelError):
    """A model was found but could not be loaded."""


class BackendError(HfevolError):
    """A generation backend failed to produce an output."""


class EndpointError(BackendError):
    """An inference endpoint did not give a usable answer.

    ``cause`` names the failure class used in retry decisions and run summaries:
    ``rate_limited``, ``overloaded``, ``server_error``, ``timeout``, ``connection``,
    ``malformed`` (retried) and ``rejected``, ``auth``, ``not_found``, ``unsupported``
    (never retried).
    """

    RETRYABLE_CAUSES = frozenset({"rate_limited", "overloaded", "server_error", "timeout", "connection", "malformed"})
    FATAL_CAUSES = frozenset({"auth", "not_found", "unsupported"})
    """Causes that would fail every request alike: they stop the job instead of failing one row."""

    cause: EndpointCause

    def __init__(
        self,
        message: str,
        *,
        cause: EndpointCause,
        url: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        hint: str | None = None,
    ) -> None:
        self.cause = cause
        self.url = url
        self.status = status
        self.retry_after = retry_after
        super().__init__(message, hint=hint)

    @property
    def retryable(self) -> bool:
        return self.cause in self.RETRYABLE_CAUSES

    @property
    def fatal(self) -> bool:
        return self.cause in self.FATAL_CAUSES


class EndpointUnreachableError(EndpointError, ConnectionError):
    """No connection could be made to an endpoint (checked before any work starts)."""

    __str__ = HfevolError.__str__


class AuthenticationError(EndpointError, PermissionError):
    """The endpoint refused the credentials (HTTP 401/403). Never retried."""

    __str__ = HfevolError.__str__


class TokenMismatchError(BackendError, ValueError):
    """A server's prefill tokens differ from its ``/tokenize`` ids of the same text, so spans cannot be placed."""


class CacheError(HfevolError):
    """The request cache file exists but cannot be used (not SQLite, or written by an incompatible version)."""


class LockedError(HfevolError):
    """Another hfevol command holds the lock of a folder this command writes (see :mod:`hfevol.locks`)."""


class OutputError(HfevolError, OSError):
    """An output folder or the request cache cannot be written: not a folder, read-only, or the disk is full."""


class SandboxUnavailableError(HfevolError):
    """The verifier sandbox (:mod:`hfevol.sandbox`) is below the required level, or its workers cannot start."""


class NotHfevolOutputError(DataError):
    """A folder given to ``publish`` lacks ``hfevol_run.json`` or ``data/*.parquet``."""


class PublishError(HfevolError):
    """A release could not be made; nothing was tagged."""


class MissingTokenError(PublishError, PermissionError):
    """Publishing to the Hub needs a token, from ``HF_TOKEN`` or ``hf auth login``."""


class ReleaseExistsError(PublishError, FileExistsError):
    """The version is already released (pass ``force=True`` to move it)."""


class UploadError(PublishError, ConnectionError):
    """The Hub refused the upload or the connection failed part-way."""


class MissingDependencyError(HfevolError, ImportError):
    """An optional dependency is needed for the requested feature."""

    def __init__(self, package: str, feature: str, install: str | None = None) -> None:
        self.package = package
        super().__init__(
            f"{feature} needs the {package!r} package, which is not installed",
            hint=f"install it with: {install or f'pip install {package}'}",
        )
