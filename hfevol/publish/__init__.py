"""Versioned releases of hfevol outputs, to the Hugging Face Hub or to a local git folder.

``publish(folder, repo_id, version="v1")`` turns an hfevol output folder into one
release: one commit holding the data, the dataset card (``README.md``), the run's
configuration file and the score plots, then a tag named ``version`` at that exact commit.
``load_dataset(repo_id, revision="v1")`` then returns that data with that card.

**The input contract** (what other stages write, and what the card shows):

- ``<folder>/hfevol_run.json``: the run record (:class:`hfevol.record.RunRecord`): the seed
  data (the first stage's input), ``stages`` (each a :class:`~hfevol.record.StageRecord`:
  ``stage``, ``backend`` with ``kind``/``model``/``revision``/``served_model``, ``sampling``,
  ``seed``, ``prompt_versions``, input, counts, and the stage's settings such as ``round`` or
  ``operations``; a stage may list ``score_columns`` to have them summarised), the commands,
  and ``files``: each data file's sha256, which must match the folder (else the folder is
  refused). ``default_config`` names the default config; without it the config with the most
  kept rows is the default.
- Data: every ``*.parquet`` under ``<folder>/data/``. ``data/<split>.parquet`` is the
  ``default`` config; ``data/<config>/<split>.parquet`` is config ``<config>`` (one per round:
  ``round_1``, ``round_2`` ...). Sharded files ``<split>-00000-of-00002.parquet`` join their
  split. Configs sort in natural order (``round_10`` after ``round_2``). In the release each file is
  named by its content, ``<split>-<sha256[:12]>.parquet`` (see :func:`source.content_name`).
- Columns, read generically and shown only when present:

  - ``<name>_status`` with ``<name>_reason`` (``evol_status``/``evol_reason``): counts by
    status and the commonest reasons why rows were eliminated;
  - score columns: the numeric columns named in :data:`SCORE_COLUMNS`, ending in
    ``_score``, or listed in a stage's ``score_columns``: summary statistics and a
    distribution plot (``plots/<column>.png``);
  - examples before and after evolution: ``parent_instruction`` -> ``evolved_instruction``,
    with ``response`` (or ``output``) when present.
- ``<folder>/car.csv`` or ``<folder>/car.md``: the CAR table, shown in the card and shipped
  with the release.

**Targets.** With a ``repo_id`` the release goes to the Hub (``HF_ENDPOINT`` decides which;
the token comes only from ``HF_TOKEN`` or ``hf auth login``). Without one it goes to a local
git repository (default ``<folder>-release``) with the same layout and one annotated tag
per version; ``load_dataset(<that folder>)`` loads its latest release (``revision`` is ignored
for a local folder: :attr:`PublishResult.load_setup` checks a version out in a folder of its
own), and ``publish_from(<that folder>, version, repo_id)`` later pushes a chosen version to
the Hub unchanged. A release commit holds exactly the files sent, plus the ``.gitattributes``
/ ``.gitignore`` a target keeps across versions (:data:`target.KEEP`).

**Guarantees.** See :func:`hfevol.publish.release.publish`.
"""

from __future__ import annotations

from .release import PublishResult, Release, list_releases, publish, publish_from
from .source import SCORE_COLUMNS

__all__ = ["SCORE_COLUMNS", "PublishResult", "Release", "list_releases", "publish", "publish_from"]
