"""The runs behind the site: each function names an experiment, its parameters and how to compute it.

Page scripts and the CLI call these; they wrap the algorithms in cached runs and hold no math.
"""
