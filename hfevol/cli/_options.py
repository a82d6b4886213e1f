"""Options shared by several commands, and their conversion to hfevol objects."""

from __future__ import annotations

import argparse

from ..backends import SamplingParams, TransformersBackend
from ..models import EMBEDDED_MODEL


def add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", default=EMBEDDED_MODEL, help=f"{EMBEDDED_MODEL!r} (SmolLM2-135M-Instruct, the default), a Hub id or a local folder")
    group.add_argument("--batch-size", type=int, default=8, help="rows per generation batch (default: 8)")
    group.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    group.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")


def add_sampling_options(parser: argparse.ArgumentParser, *, temperature: float, max_new_tokens: int) -> None:
    group = parser.add_argument_group("sampling")
    group.add_argument("--temperature", type=float, default=temperature, help=f"0 means greedy (default: {temperature})")
    group.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling mass (default: 0.95)")
    group.add_argument("--max-new-tokens", type=int, default=max_new_tokens, help=f"default: {max_new_tokens}")
    group.add_argument("--seed", type=int, default=0, help="run seed; each row derives its own (default: 0)")


def backend_from(args: argparse.Namespace) -> TransformersBackend:
    return TransformersBackend(model=args.model, batch_size=args.batch_size, dtype=args.dtype, device=args.device)


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
    """The command's options, for the run record (tokens never come through options)."""
    return {k: v for k, v in vars(args).items() if k != "run"}
