"""A sandbox for model-written verifier functions (AutoIF): never run in-process.

::

    from hfevol.sandbox import Sandbox

    with Sandbox(per_input_timeout=1.0) as sandbox:
        run = sandbox.run("def evaluate(response):\n    return len(response) < 50", ["short", "x" * 80])
        run.status, run.results            # ("ok", [True, False])
        sandbox.level                      # "bwrap+seccomp" where bubblewrap and libseccomp work

A small pool of trusted fork-server processes (``runner.py``, standard library only) forks a
fresh child for every function; the child sets rlimits, loads a seccomp deny-list and only then
reads the code. Layers used when they work here, weakest to strongest: ``process`` (clean
environment, rlimits), ``seccomp``, ``bwrap`` (bubblewrap namespaces), ``bwrap+seccomp``.
"""

from hfevol.errors import SandboxUnavailableError
from hfevol.sandbox.box import FunctionRun, Sandbox

__all__ = ["FunctionRun", "Sandbox", "SandboxUnavailableError"]
