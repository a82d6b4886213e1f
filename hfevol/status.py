"""The row statuses every transform writes (``evol_status``, ``<output>_status``, ``score_status``).

A row is never dropped; its status says what happened to it, and the companion ``*_reason``
column says why when it is not ``ok``:

- ``ok``: done.
- ``truncated``: a generation stopped at ``max_new_tokens`` (its text is kept).
- ``failed``: the backend failed, or returned an empty text.
- ``parse_failed``: the reply could not be read (Auto Evol-Instruct without a final rewrite).
- ``invalid_input``: an input column holds a value the transform cannot use.
- ``skipped``: the row's ``skip_unless`` status is not ``ok``, so it was not processed.
- ``eliminated``: an elimination rule fired on the evolution.
- ``undefined``: a score is undefined (empty text, a zero loss, no scored tokens).
- ``too_long``: the row does not fit the server's context.
- ``error``: the server refused to score the row.
- ``not_sent``: the row's request was not sent, the run's token budget being used (``--budget-tokens``);
  the same command with a larger budget sends it.
"""

from __future__ import annotations

from typing import Literal, get_args

Status = Literal["ok", "truncated", "failed", "parse_failed", "invalid_input", "skipped", "eliminated", "undefined", "too_long", "error", "not_sent"]
STATUSES: tuple[Status, ...] = get_args(Status)
"""Every :data:`Status`, in the order above."""

CrossvalStatus = Literal["kept", "dropped", "not_run", "no_function", "duplicate", "not_checked"]
"""What AutoIF's cross-validation did with a constraint or a verifier function (``crossval_status`` in its
side tables under ``<out>/_autoif/``; the data rows themselves keep the :data:`Status` values)."""
CROSSVAL_STATUSES: tuple[CrossvalStatus, ...] = get_args(CrossvalStatus)

NOT_SENT_PREFIX = "not sent: "
"""How the error of a request that was never sent begins (:class:`hfevol.budget.MeteredBackend`); such a row gets ``not_sent``."""
