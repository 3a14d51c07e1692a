"""How honest the search's trust signals are: prediction-set coverage and "no close match".

- ``signals``: the measures on embedded libraries (pure numpy, and crepes through
  ``data_index.trust``); the search-trust protocol of ``benchmarks.protocols`` runs them.
- ``__main__``: ``python -m benchmarks.trust``, every shared library under every offline
  backbone, with the other libraries' photos as outside queries.
"""
