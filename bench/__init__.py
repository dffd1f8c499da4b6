"""The benchmarks behind ``make bench``: speed, memory and model quality, into docs/benchmarks.md.

One module per topic (``data``, ``quality``, ``training``, ``scoring``, ``lookup``); each
has a ``run_*`` function returning its measurements and a ``render_*`` function turning
them into a Markdown section. ``report`` assembles the document; ``__main__`` is the entry
point (``python -m bench [--quick]``).
"""
