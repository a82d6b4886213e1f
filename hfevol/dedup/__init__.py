"""Near-duplicates and benchmark contamination: two ``datasets`` stages that flag rows, never drop them.

- :func:`~hfevol.dedup.dedup.dedup`: exact duplicates (normalised hash), near-duplicates
  (MinHash + LSH over word n-grams, with ``rensa``) and, with an embedder, semantic
  near-duplicates; every row gets a cluster id and ``dup_keep`` (the cluster's
  representative), so ``ds.filter(lambda r: r["dup_keep"])`` keeps one row per cluster;
- :func:`~hfevol.dedup.decontaminate.decontaminate`: prompts that share word n-grams with,
  or (with an embedder) lie close in meaning to, a benchmark prompt; each flagged row names
  the benchmark row it matched;
- :mod:`.text`: the normalisation and the word n-grams both use;
- :mod:`.neighbours`: the embedder interface and the block-wise neighbour search;
- :mod:`.card`: the dataset card's dedup / contamination section.

Nothing heavy is imported here.
"""
