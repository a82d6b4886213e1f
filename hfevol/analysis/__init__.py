"""Which evolver? Output-space analyses of evolved instructions (Hui et al., arXiv 2412.11231).

- :mod:`.mnd`: minimum neighbour distance over sentence embeddings (diversity);
- :mod:`.embed`: the sentence-transformers embedder (optional extra ``analysis``);
- :mod:`.difficulty`: difficulty level and 0-100 score from an LLM judge, as text or from
  a local judge's probabilities;
- :mod:`.reward`: instruction reward with a sequence-classification reward model;
- :mod:`.analyze`: the per-row columns and per-round summary of an evolved dataset;
- :mod:`.compare`: the table and plots of several evolvers side by side.

Nothing heavy is imported here.
"""
