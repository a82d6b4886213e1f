"""``hfevol run-recipe``: run a recipe file (TOML): ``hfevol evolve``, then ``hfevol respond``, with its options.

A recipe is a small TOML file (see ``dataset_scripts/``)::

    out = "out/recipes/math"          # evolve writes <out>/evolved, respond <out>/responded

    [model]                           # options given to both commands
    batch-size = 8

    [evolve]                          # the options of `hfevol evolve`, without the dashes
    dataset = "builtin:math"
    rounds = 3
    no-breadth = true

    [respond]                         # optional: the options of `hfevol respond`
    max-new-tokens = 256

``true`` turns a flag on, ``false`` leaves it off, a list gives an option several values.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DatasetNotFoundError

_TOP_KEYS = {"out", "description", "model", "evolve", "respond"}
_SET_BY_RECIPE = {"evolve": {"out"}, "respond": {"out", "dataset"}}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run-recipe", help="run a recipe file: evolve, then respond", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recipe", help="a TOML recipe, e.g. dataset_scripts/math.toml")
    p.add_argument("--out", default=None, help="output folder (default: the recipe's `out`)")
    p.add_argument("--limit", type=int, default=None, help="evolve only the first N rows (overrides the recipe)")
    p.add_argument("--dry-run", action="store_true", help="print the commands without running them")
    p.set_defaults(run=run)


def load_recipe(path: str | Path) -> dict[str, Any]:
    """Read and check a recipe file.

    Raises:
        DatasetNotFoundError: the file does not exist.
        ConfigError: it is not valid TOML, has an unknown key, or has no ``[evolve]`` table.
    """
    import tomllib

    file = Path(path)
    if not file.is_file():
        raise DatasetNotFoundError(f"recipe {str(path)!r} does not exist", hint="see dataset_scripts/ for examples.")
    try:
        recipe = tomllib.loads(file.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"recipe {str(path)!r} is not valid TOML: {exc}") from exc
    unknown = sorted(set(recipe) - _TOP_KEYS)
    if unknown:
        raise ConfigError(f"recipe {str(path)!r} has unknown key(s) {unknown}", hint=f"known keys: {', '.join(sorted(_TOP_KEYS))}.")
    if not isinstance(recipe.get("evolve"), dict):
        raise ConfigError(f"recipe {str(path)!r} has no [evolve] table")
    return recipe


def recipe_commands(recipe: dict[str, Any], *, name: str, out: str | None = None, limit: int | None = None) -> list[list[str]]:
    """The ``hfevol`` argument lists the recipe stands for: evolve, then respond if it has a ``[respond]`` table.

    Raises:
        ConfigError: an option the command does not have, or one the recipe sets itself.
    """
    from . import build_parser

    root = Path(out or recipe.get("out") or f"out/recipes/{name}")
    commands = []
    for command in ("evolve", "respond"):
        section = recipe.get(command)
        if section is None:
            continue
        options = {**recipe.get("model", {}), **section}
        if command == "evolve" and limit is not None:
            options["limit"] = limit
        forbidden = sorted(_SET_BY_RECIPE[command] & set(options))
        if forbidden:
            raise ConfigError(f"recipe {name!r}: [{command}] must not set {forbidden}; the recipe sets them", hint="set the top-level `out` instead.")
        known = _option_names(build_parser(), command)
        argv = [command]
        for key, value in options.items():
            flag = f"--{key}"
            if flag not in known:
                raise ConfigError(f"recipe {name!r}: [{command}] has the unknown option {key!r}", hint=f"see `hfevol {command} --help`.")
            if value is True:
                argv.append(flag)
            elif value is False:
                continue
            elif isinstance(value, list):
                argv += [flag, *map(str, value)]
            else:
                argv += [flag, str(value)]
        if command == "evolve":
            argv += ["--out", str(root / "evolved")]
        else:
            argv += ["--dataset", str(root / "evolved"), "--out", str(root / "responded")]
        commands.append(argv)
    return commands


def _option_names(parser: argparse.ArgumentParser, command: str) -> set[str]:
    for action in parser._subparsers._group_actions:  # type: ignore[union-attr]
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            return set(action.choices[command]._option_string_actions)
    return set()


def run(args: argparse.Namespace) -> int:
    from . import build_parser

    recipe = load_recipe(args.recipe)
    commands = recipe_commands(recipe, name=Path(args.recipe).stem, out=args.out, limit=args.limit)
    for argv in commands:
        print("$ hfevol " + shlex.join(argv), flush=True)
        if args.dry_run:
            continue
        try:
            parsed = build_parser().parse_args(argv)
        except SystemExit as exc:
            raise ConfigError(f"recipe {args.recipe!r}: `hfevol {argv[0]}` refused an option value (message above)") from exc
        code = int(parsed.run(parsed) or 0)
        if code:
            print(f"`hfevol {argv[0]}` ended with status {code}; stopping the recipe", file=sys.stderr)
            return code
    return 0
