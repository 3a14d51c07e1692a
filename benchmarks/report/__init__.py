"""What a benchmark run reads like: Markdown tables and plotly figures from its records alone.

- ``markdown``: ``python -m benchmarks report``'s report (``markdown_report``, ``save_plots``).
- ``tables``: records to Markdown tables (latest runs, intervals, the overall rows).
- ``evidence``: each paper's conventions beside ours, paired comparisons and strata.
- ``plots``: the plotly figures, also drawn by the app's Benchmark tab.
- ``figure_files``: figures to offline HTML (one plotly.js per folder), PNG and SVG.
"""
