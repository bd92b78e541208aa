"""torch.library custom ops over the compiled core: one module per likelihood.

Each op validates nothing itself (see :mod:`elbits.ops.validate`, called by the
public API), allocates its outputs, calls ``elbits._C`` with the GIL released and
registers a fake implementation and autograd, so it composes with
``torch.compile(fullgraph=True)``.
"""
