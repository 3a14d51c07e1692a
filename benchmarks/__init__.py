"""The evaluation users run: score backbones on a case library and report it.

- Scores of ranked labels (pure numpy): ``metrics``, ``votes``, ``intervals`` (bootstrap over
  cases, paired tests) and ``comparisons`` (paired backbones and strata from per-query records).
- The papers' query schemes on arrays: ``retrieval``, ``text_protocols``, ``probes``,
  ``knn_validated``, ``classifier_protocols``, ``reference_classifier``, ``ablations`` and
  ``image_sizes``, over exact ``search``.
- ``protocols``: the registry of what ``python -m benchmarks run --protocol`` offers, each run on
  an ``embedded.Embedded`` view of one library under one backbone.
- ``runner`` embeds, times (``latency``, ``timing``) and writes flat ``records``; the
  ``report`` package reads only those records.
- ``variants`` (retrieval variants against their plain backbone), ``disagreements`` (two
  backbones' top-1, query by query) and the ``trust`` package (the search's trust signals).

The developer speed and scale scripts are apart, in ``benchmarks.perf``.
"""
