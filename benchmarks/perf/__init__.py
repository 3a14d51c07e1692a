"""Developer speed and scale scripts, kept apart from the evaluation users run.

Each script times one part of the product on this machine (the running app, the duplicate
audit, the backbones, exact and HNSW search) and writes its figures to benchmarks/results/.
`python -m benchmarks.perf --help` lists them; `python -m benchmarks.perf.<name> --help`
tells how to run one. The other modules here are their parts (search methods and vectors,
copy transforms, starting and stopping the app) and are not run on their own.
"""
