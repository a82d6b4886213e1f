"""``hfevol respond``: answer the instructions of a dataset (an ``hfevol evolve`` output, or any seed data)
with a responder model, local or behind an inference endpoint."""

from __future__ import annotations

import argparse
import time
from collections import Counter

from ..budget import add_budget_options, metered, print_tokens, record_tokens
from ..io import write_output
from ..shards import add_shard_options, finish_shard, spec_from
from ._claim import writes_output
from ._options import (
    add_column_options,
    add_dataset_options,
    add_generation_options,
    add_limit_option,
    endpoint_of,
    map_batch_size,
    mapping_from,
    request_backend_from,
    run_options,
    sampling_from,
)
from ._report import _short, first_rows, print_endpoint_summary, value_counts
from .evolve import read_seed_rows


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("respond", help="answer instructions with a responder model", description=__doc__)
    add_dataset_options(
        p,
        required=True,
        dataset="an hfevol output folder (every round is answered), a file, a folder or a Hub id",
        out="output folder, in the same layout as the input's (one config per round)",
    )
    add_column_options(
        p,
        "instruction",
        "output",
        instruction="same as --map instruction=COLUMN",
        output="column for the responses; its companions are <column>_status, _reason, _responder, _seed",
    )
    add_limit_option(p, verb="answer")
    add_generation_options(p, temperature=0.0, max_new_tokens=2048)
    add_shard_options(p)
    add_budget_options(p)
    p.set_defaults(run=run)


@writes_output()
def run(args: argparse.Namespace) -> int:
    from ..formats import add_messages, to_alpaca
    from ..record import StageRecord, chain_command, chained
    from ..respond import Respond

    spec = spec_from(args)
    rows = read_seed_rows(args)
    shard, offset = spec.take(rows)
    ds = to_alpaca(shard, mapping_from(args), format=args.format)
    chained(args.dataset, rows, split=args.split)  # a damaged input record fails here, before any generation
    if getattr(args, "dry_run", False):
        from ..budget import NoSend, dry_run, prices_from, token_counter

        prices = prices_from(args.price_per_mtok)
        planned = Respond(backend=NoSend(), sampling=sampling_from(args), seed=args.seed, output_column=args.output_column)
        dry_run(planned, ds, index_offset=offset, counter=token_counter(args)).print("respond", prices)
        return 0
    backend = metered(request_backend_from(args), args)
    respond = Respond(backend=backend, sampling=sampling_from(args), seed=args.seed, output_column=args.output_column)
    respond.backend.describe()  # loads the model before any row is processed
    endpoint = endpoint_of(respond.backend)
    started = time.perf_counter()
    answered = respond.map(ds, batch_size=map_batch_size(args, endpoint), desc="Responding", index_offset=offset)
    answered = add_messages(answered, output_column=args.output_column)
    seconds = time.perf_counter() - started
    status_column = respond.columns["status"]
    counts = value_counts(answered, status_column)
    stage = StageRecord.from_json(respond.metadata()).recorded(input=rows, counts=counts)
    record = chain_command(args.dataset, rows, "respond", run_options(args), stage, split=args.split)
    record, extra = finish_shard(
        record_tokens(record, respond.backend).with_extras(responses=dict(counts)), spec, len(rows), first_stage=len(record.stages) - 1
    )
    out = write_output(answered, args.out, record=record, extra=extra)
    print(f"\n== Responses: {len(answered)} rows in {seconds:.1f} s, responder {stage.backend.model}")
    for status, n in counts.most_common():
        print(f"   {status:<14} {n:>6}")
    if counts["skipped"]:
        why = (
            value_counts(answered, "evol_status", where=status_column, among=("skipped",))
            if "evol_status" in answered.column_names
            else Counter({None: counts["skipped"]})
        )
        print(
            f"   skipped {counts['skipped']} row(s) whose evolution is not ok ({', '.join(f'{k}: {n}' for k, n in why.most_common())}); they are kept, unanswered"
        )
    for row in first_rows(answered, 2, where=status_column, among=("ok", "truncated"), columns=("instruction", args.output_column)):
        print(f"\n   instruction: {_short(row['instruction'], 110)}\n   response:    {_short(row[args.output_column], 110)}")
    print(f"\n   output: {out}")
    if endpoint is not None:
        print_endpoint_summary(endpoint.stats.snapshot(), cache_hits=getattr(respond.backend, "hits", None))
    print_tokens(respond.backend)
    return 0
