"""Experiment drivers: each runs one job end to end (load, compute, write) on the library's layers and
hands the results to :mod:`elbits.report` or the command line to render."""
