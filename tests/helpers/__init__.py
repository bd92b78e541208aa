"""Helpers shared by several test files (test files import from here, never from one another).

``devices``: the device parametrisation (CPU always, CUDA with a CUDA build and a GPU);
``colour_inputs``: inputs of the 8-bit / colour likelihood tests.
"""
