"""Shared pieces of the sandbox tests: forcing a level through the probe, and honest verifiers."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

from hfevol.sandbox import Sandbox, probe

LAYERS = {
    "bwrap+seccomp": probe.Layers(True, True),
    "bwrap": probe.Layers(True, False, "forced by a test"),
    "seccomp": probe.Layers(False, True, "forced by a test"),
    "process": probe.Layers(False, False, "forced by a test"),
}

# An honest verifier and its verdicts, computed by hand: fewer than five characters.
HONEST = "def evaluate(response):\n    return len(response) < 5\n"
HONEST_INPUTS = ["abc", "abcdefgh", ""]
HONEST_VERDICT = [True, False, True]


@contextlib.contextmanager
def forced_level(level: str) -> Iterator[None]:
    """Make the once-per-process probe answer ``level`` (the real commands of that level are used)."""
    saved = probe._cached
    probe._cached = LAYERS[level]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the loud no-bubblewrap warning
            yield
    finally:
        probe._cached = saved


def assert_honest(sandbox: Sandbox) -> None:
    """The run goes on: a fresh honest verifier still gives the right verdict."""
    run = sandbox.run(HONEST, HONEST_INPUTS)
    assert (run.status, run.results, run.errors) == ("ok", HONEST_VERDICT, [None, None, None])
