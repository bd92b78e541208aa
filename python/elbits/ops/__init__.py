"""torch.library custom ops over the compiled core, one module per likelihood family as in csrc/cpu/.

- Likelihood families, each its ``elbits::*`` op(s) and the ``*_terms`` entry point that
  :data:`elbits.api.LIKELIHOODS` registers: :mod:`~elbits.ops.bernoulli`,
  :mod:`~elbits.ops.categorical`, :mod:`~elbits.ops.logistic_mixture`,
  :mod:`~elbits.ops.discretized_gaussian`, :mod:`~elbits.ops.continuous_bernoulli`.
- The halves and protocols they share: :mod:`~elbits.ops.gaussian_kl` (the KL half),
  :mod:`~elbits.ops.fused` (the forward body: likelihood kernel, then KL, then one error),
  :mod:`~elbits.ops.stored_gradient` (the gradient written by the forward times
  ``grad_prescale``, and its backward), :mod:`~elbits.ops.scale_rows` (the op that backward uses),
  :mod:`~elbits.ops.autograd` (the eager ``autograd.Function`` twins and every differentiation
  mode), :mod:`~elbits.ops.validate` (input checks), :mod:`~elbits.ops.buffers` (reused gradient
  buffers), :mod:`~elbits.ops.device_flags` (CUDA's input-problem word), :mod:`~elbits.ops.launch`
  (thread count and stream).

Each op validates nothing itself (the ``*_terms`` functions do), allocates its outputs, calls
``elbits._C`` with the GIL released and registers a fake implementation and autograd, so it
composes with ``torch.compile(fullgraph=True)``. A new likelihood is one module here beside its
kernel file in csrc/cpu/ (and csrc/cuda/), plus its line in :data:`elbits.api.LIKELIHOODS`.
"""
