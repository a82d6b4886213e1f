"""Options shared by several commands, and their conversion to hfevol objects."""

from __future__ import annotations

import argparse

from ..backends import SamplingParams, TransformersBackend
from ..models import EMBEDDED_MODEL


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


def backend_from(args: argparse.Namespace) -> TransformersBackend:
    return TransformersBackend(model=args.model, batch_size=args.batch_size, dtype=args.dtype, device=args.device)


def sampling_from(args: argparse.Namespace) -> SamplingParams:
    return SamplingParams(temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens)
