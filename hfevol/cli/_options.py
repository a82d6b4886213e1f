"""Options shared by several commands, and their conversion to hfevol objects."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ..backends import Backend, SamplingParams, TransformersBackend
from ..errors import ConfigError
from ..models import EMBEDDED_MODEL

if TYPE_CHECKING:
    from datasets import Dataset

    from ..backends.endpoint import EndpointBackend

CACHE_FILE = Path(".hfevol-cache") / "requests.sqlite"
"""Default request cache, inside the output folder (hidden, so that ``load_dataset(out)`` ignores it)."""


def add_dataset_options(parser: argparse.ArgumentParser, *, dataset: str, out: str, required: bool = False) -> None:
    """``--dataset`` (the built-in sample unless ``required``), ``--split`` and ``--out``, with the command's help texts."""
    from ..io import BUILTIN_SAMPLE

    parser.add_argument("--dataset", required=required, default=None if required else BUILTIN_SAMPLE, help=dataset)
    parser.add_argument("--split", default="train", help="the split to read (default: train)")
    parser.add_argument("--out", required=True, help=out)


_COLUMN_HELP = {
    "instruction": "the instruction column (default: instruction)",
    "input": "optional; a missing column means no input (default: input)",
    "output": "the answer (default: output)",
}


def add_column_options(parser: argparse.ArgumentParser, *names: str, **help: str) -> None:
    """``--<name>-column`` (default ``<name>``) for each of ``names`` (instruction, input, output); ``help`` overrides a text."""
    for name in names:
        parser.add_argument(f"--{name}-column", default=name, help=help.get(name, _COLUMN_HELP[name]))


def add_limit_option(parser: argparse.ArgumentParser, *, verb: str) -> None:
    parser.add_argument("--limit", type=int, default=None, help=f"{verb} only the first N rows")


def check_limit(args: argparse.Namespace) -> None:
    limit = getattr(args, "limit", None)
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit {limit} must be at least 1")


def rows_from(args: argparse.Namespace) -> "Dataset":
    """The ``--dataset`` / ``--split`` rows, the first ``--limit`` of them if given (checked first)."""
    from ..io import load_rows

    check_limit(args)
    ds = load_rows(args.dataset, split=args.split)
    limit = getattr(args, "limit", None)
    return ds.select(range(min(limit, len(ds)))) if limit is not None else ds


def add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", default=EMBEDDED_MODEL, help=f"{EMBEDDED_MODEL!r} (SmolLM2-135M-Instruct, the default), a Hub id or a local folder")
    group.add_argument("--batch-size", type=int, default=8, help="rows (or sequences) per model batch (default: %(default)s)")
    group.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    group.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")


def add_sampling_options(parser: argparse.ArgumentParser, *, temperature: float, max_new_tokens: int) -> None:
    group = parser.add_argument_group("sampling")
    group.add_argument("--temperature", type=float, default=temperature, help=f"0 means greedy (default: {temperature})")
    group.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling mass (default: 0.95)")
    group.add_argument("--max-new-tokens", type=int, default=max_new_tokens, help=f"default: {max_new_tokens}")
    group.add_argument("--seed", type=int, default=0, help="run seed; each row derives its own (default: 0)")


def add_endpoint_options(parser: argparse.ArgumentParser, *, resume: bool = True) -> None:
    """The endpoint options, and with ``resume`` the request cache options (``--cache``, ``--no-cache``)."""
    group = parser.add_argument_group("inference endpoint (instead of a local model)")
    group.add_argument("--endpoint", action="append", metavar="URL", help="a TGI or OpenAI-compatible server; repeat for replicas of one model")
    group.add_argument("--endpoint-api", choices=["tgi", "openai"], default="tgi", help="the server's API (default: tgi)")
    group.add_argument("--endpoint-route", default="chat", help="tgi: chat or generate; openai: chat or completions (default: chat)")
    group.add_argument("--endpoint-model", default=None, help="model name sent to the server (default: the one it serves)")
    group.add_argument("--tokenizer", default=None, help="chat template for the generate/completions routes: 'embedded', a folder or a cached Hub id")
    group.add_argument("--max-in-flight", type=int, default=128, help="requests in flight per endpoint (default: 128)")
    group.add_argument("--max-attempts", type=int, default=8, help="attempts per request (default: 8)")
    group.add_argument("--retry-budget", type=float, default=900.0, help="seconds one request may take, retries included (default: 900)")
    group.add_argument("--request-timeout", type=float, default=300.0, help="seconds one attempt may take (default: 300)")
    group.add_argument("--header", action="append", default=[], metavar="'NAME: VALUE'", help="extra HTTP header (not for credentials)")
    group.add_argument(
        "--token-env",
        default=None,
        metavar="VAR",
        help="environment variable holding the server's key (default: HF_TOKEN or the hf login, sent to Hugging Face hosts only)",
    )
    if not resume:
        return
    cache = parser.add_argument_group("resume")
    cache.add_argument("--cache", default=None, metavar="FILE", help=f"request cache (default: <out>/{CACHE_FILE}); a rerun sends no finished request again")
    cache.add_argument("--no-cache", action="store_true", help="do not read or write the request cache")


def add_generation_options(parser: argparse.ArgumentParser, *, temperature: float, max_new_tokens: int) -> None:
    """What a generating command (evolve, respond) takes after its data options: input layout, model, sampling, endpoint."""
    add_format_options(parser)
    add_model_options(parser)
    add_sampling_options(parser, temperature=temperature, max_new_tokens=max_new_tokens)
    add_endpoint_options(parser)


def _headers(items: list[str]) -> dict[str, str]:
    headers = {}
    for item in items or []:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise ConfigError(f"--header {item!r} must look like 'Name: value'")
        headers[name.strip()] = value.strip()
    return headers


def backend_from(args: argparse.Namespace) -> Backend:
    """The local model, or an endpoint backend when ``--endpoint`` is given."""
    if not getattr(args, "endpoint", None):
        return TransformersBackend(model=args.model, batch_size=args.batch_size, dtype=args.dtype, device=args.device)
    from ..backends.openai import OpenAIBackend
    from ..backends.retry import RetryPolicy
    from ..backends.tgi import TGIBackend

    cls = TGIBackend if args.endpoint_api == "tgi" else OpenAIBackend
    return cls(
        urls=args.endpoint,
        route=args.endpoint_route,
        max_in_flight=args.max_in_flight,
        retry=RetryPolicy(max_attempts=args.max_attempts, max_total_seconds=args.retry_budget, timeout=args.request_timeout),
        headers=_headers(args.header),
        token_env=args.token_env,
        model=args.endpoint_model,
        tokenizer=args.tokenizer,
    )


def request_backend_from(args: argparse.Namespace) -> Backend:
    """:func:`backend_from`, checked and wrapped in the request cache.

    An endpoint is checked here, before any work (a clear error if it is unreachable, and a
    line naming the served model), and the backend is wrapped in the request cache
    (:class:`~hfevol.cache.CachedBackend`) unless ``--no-cache``.
    """
    from ..backends.endpoint import EndpointBackend
    from ..cache import CachedBackend

    backend = backend_from(args)
    if isinstance(backend, EndpointBackend):
        served = backend.check()
        print(f"endpoint: {backend.kind} serving {served['model']} (revision {served['revision'] or 'unknown'}) at {len(backend.urls)} URL(s)")
    cache = cache_path_from(args)
    return CachedBackend(backend, str(cache)) if cache is not None else backend


def endpoint_of(backend: Backend) -> "EndpointBackend | None":
    """The endpoint behind ``backend`` (through the request cache and the token meter), or None for a local model."""
    from ..transform import endpoint_behind

    return endpoint_behind(backend)


ENDPOINT_MAP_BATCH = 64
"""Rows per ``map`` batch against an endpoint: small enough for a lively progress bar; the concurrency comes from
the up to 1000 batches ``datasets`` runs at once, capped by the in-flight limit."""


def map_batch_size(args: argparse.Namespace, endpoint: "EndpointBackend | None") -> int:
    """Rows per ``map`` batch: :data:`ENDPOINT_MAP_BATCH` for an endpoint, two model batches for a local model."""
    return ENDPOINT_MAP_BATCH if endpoint is not None else max(args.batch_size, 1) * 2


def cache_path_from(args: argparse.Namespace) -> Path | None:
    if getattr(args, "no_cache", False):
        return None
    return Path(args.cache) if getattr(args, "cache", None) else Path(args.out) / CACHE_FILE


def sampling_from(args: argparse.Namespace) -> SamplingParams:
    return SamplingParams(temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens)


def add_format_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("input layout")
    group.add_argument("--format", default="auto", choices=["auto", "alpaca", "sharegpt", "messages"], help="input layout (default: detect it)")
    group.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="FIELD=COLUMN",
        help="read FIELD (instruction, input, output, conversations, messages) from COLUMN; repeatable",
    )


def mapping_from(args: argparse.Namespace) -> dict[str, str]:
    """``--map`` options as a dict; ``--instruction-column X`` counts as ``--map instruction=X``."""
    from ..errors import ConfigError

    mapping: dict[str, str] = {}
    for item in args.map:
        field, sep, column = item.partition("=")
        if not sep or not field.strip() or not column.strip():
            raise ConfigError(f"--map {item!r} must look like FIELD=COLUMN", hint="for example --map instruction=question")
        mapping[field.strip()] = column.strip()
    column = getattr(args, "instruction_column", "instruction")
    if column != "instruction":
        mapping.setdefault("instruction", column)
    return mapping


def run_options(args: argparse.Namespace) -> dict[str, object]:
    """The command's options, for the run record: ``--header`` by name only, endpoint URLs without secrets.

    Tokens never come through options; a header value might be one, so ``header`` becomes
    ``header_names`` (``retry-failed`` asks for the values again, :func:`headers_again`).
    """
    from ..redact import header_names, redact_url

    options = {k: v for k, v in vars(args).items() if k not in ("run", "header")}
    if getattr(args, "header", None) is not None:
        options["header_names"] = header_names(args.header)
    if isinstance(options.get("endpoint"), list):
        options["endpoint"] = [redact_url(url) for url in options["endpoint"]]
    return options


def headers_again(stored: argparse.Namespace, given: list[str] | None) -> list[str]:
    """The ``--header`` items for a re-run of a recorded command: those ``given`` now, which must name every recorded one.

    Raises:
        ConfigError: the recorded run sent a header (only its name is recorded) that ``given`` lacks.
    """
    from ..redact import header_names

    if getattr(stored, "header", None) and not given:
        return list(stored.header)  # a record written before header values were left out
    given = list(given or [])
    have = {name.lower() for name in header_names(given)}
    missing = [name for name in getattr(stored, "header_names", None) or [] if name.lower() not in have]
    if missing:
        raise ConfigError(
            f"the recorded run sent the header(s) {', '.join(missing)}, whose values are not recorded",
            hint="give them again: " + " ".join(f"--header '{name}: VALUE'" for name in missing) + ".",
        )
    return given
