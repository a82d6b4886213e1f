"""``hfevol publish``: release an output folder as a versioned dataset, on the Hub or in a local git folder.

Without --repo the release goes to a local git folder (default: <dir>-release beside <dir>);
``--from <release folder>`` pushes one of its versions to the Hub unchanged.
"""

from __future__ import annotations

import argparse

from ..errors import ConfigError
from ..extras import available, install_line


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("publish", help="publish an output folder as a versioned dataset with a card", description=__doc__)
    p.add_argument("folder", nargs="?", help="an hfevol output folder (data/*.parquet + hfevol_run.json)")
    p.add_argument("--version", dest="release", required=True, metavar="VERSION", help="release version, e.g. v1, v1.2 or 1.2.0")
    p.add_argument("--repo", help="Hub dataset 'user/name'; without it the release is written locally")
    p.add_argument("--local-dir", help="local release folder (default: <folder>-release)")
    p.add_argument("--from", dest="from_dir", metavar="RELEASE_DIR", help="push version VERSION of this local release folder to --repo, unchanged")
    p.add_argument("--private", action="store_true", help="create the Hub repo private (or make it private); never made public")
    p.add_argument("--create-pr", action="store_true", help="open a pull request (refs/pr/N) instead of writing the branch; no tag")
    p.add_argument("--force", action="store_true", help="move an existing version tag to this content")
    p.add_argument("--branch", default="main", help="Hub branch to release on (default: main)")
    p.add_argument("--message", help="commit and tag message (default: 'Release VERSION')")
    card = p.add_argument_group("card")
    card.add_argument("--license", help="dataset license id for the card (default: the run record's, else 'unknown')")
    card.add_argument("--language", nargs="+", help="ISO 639 codes (default: en)")
    card.add_argument("--pretty-name", help="card title (default: the repo or folder name)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..output_folder import check_writable
    from ..publish.card import CardOptions
    from ..publish.release import default_local_dir, publish, publish_from

    if args.from_dir:
        if args.folder or args.local_dir:
            raise ConfigError("--from takes no output folder and no --local-dir", hint="hfevol publish --from RELEASE_DIR --version V --repo user/name")
        if not args.repo:
            raise ConfigError("--from needs --repo: it pushes a local release to the Hub")
        result = publish_from(args.from_dir, args.repo, version=args.release, private=args.private, create_pr=args.create_pr,
                              force=args.force, branch=args.branch, message=args.message)  # fmt: skip
    else:
        if not args.folder:
            raise ConfigError("give the output folder to publish (or --from RELEASE_DIR)")
        if args.local_dir or not args.repo:  # a local release: its folder is checked before any work
            check_writable(args.local_dir or default_local_dir(args.folder), option="--local-dir")
        options = CardOptions(license=args.license, language=args.language, pretty_name=args.pretty_name)
        result = publish(args.folder, args.repo, version=args.release, private=args.private, create_pr=args.create_pr, force=args.force,
                         local_dir=args.local_dir, branch=args.branch, message=args.message, card=options)  # fmt: skip
    where = f"Hub dataset {result.location}" + (" (private)" if result.private else "") if result.target == "hub" else f"local release folder {result.location}"
    print(f"\n== publish {result.version} to {where}: {result.status}")
    print(f"   commit:  {result.commit}")
    if result.tag:
        print(f"   tag:     {result.tag}")
    if result.pr_url:
        print(f"   pull request: {result.pr_url}")
    print(f"   files:   {', '.join(result.files)}")
    if result.note:
        print(f"   note:    {result.note}")
    if not args.from_dir and not available("plots"):
        print(f"   plots:   none drawn, matplotlib is not installed ({install_line('plots')})")
    if result.load_setup:
        print(f"   load {result.version} (in a folder of its own; the release folder itself shows the latest release):")
        print(f"            {result.load_setup}")
    else:
        print("   load:")
    print("            from datasets import load_dataset")
    for line in result.load:
        print(f"            ds = {line}")
    return 0
