"""The evaluation users run: score backbones on a case library and report it.

metrics and votes score ranked labels (pure numpy); retrieval, text_protocols, probes, ablations
and image_sizes are the papers' query schemes on arrays; protocols is the registry of what
`python -m benchmarks run --protocol` offers, each protocol run on an `embedded.Embedded` view
of one library under one backbone; runner embeds, times (latency, timing) and writes flat
records (records); report, report_tables and plots read only those records. The developer
speed and scale scripts are apart, in `benchmarks.perf`.
"""
