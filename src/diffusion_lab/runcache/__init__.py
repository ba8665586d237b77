"""Cached runs: the build context, cache keys, atomic entries and where results came from.

A layer of its own, below `experiments/` (which wraps computations in cached runs) and above the
algorithms and models, which never know they are cached.
"""
