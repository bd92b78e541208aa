"""The Bernoulli op's speed paths must never change a result: the pre-scaled stored
gradient (recon_grad_hint), the reused gradient buffer, and the autograd.Function
twin used in plain eager mode instead of the custom op's dispatcher."""

import pytest
import torch

import elbits
from elbits import reference as ref
from elbits.ops.bernoulli import bernoulli_elbo


def make(batch=3, n=50, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(batch, 1, n, generator=g) * 3).to(dtype).requires_grad_(True)
    target = (torch.rand(batch, 1, n, generator=g) < 0.3).to(torch.uint8)
    mu = torch.randn(batch, 4, generator=g).requires_grad_(True)
    logvar = torch.randn(batch, 4, generator=g).requires_grad_(True)
    return logits, target, mu, logvar


def grads(loss_of_terms, hint=None, **kw):
    logits, target, mu, logvar = make(**kw)
    terms = elbits.elbo_terms(logits, target, mu, logvar, recon_grad_hint=hint)
    loss_of_terms(terms).backward()
    return logits.grad, mu.grad, logvar.grad


MEAN = lambda t: (t.recon + t.kl_total).mean()  # noqa: E731
SUM = lambda t: (t.recon + 0.5 * t.kl_total).sum()  # noqa: E731
WEIGHTED = lambda t: (t.recon * torch.tensor([0.3, -2.0, 7.0])).sum()  # noqa: E731


@pytest.mark.parametrize("loss", [MEAN, SUM, WEIGHTED], ids=["mean", "sum", "weighted"])
@pytest.mark.parametrize("hint", [None, 1.0, 1 / 3, -5.0])
def test_hint_never_changes_gradients(loss, hint):
    # hint 1.0 stores the plain gradient and always rescales: the baseline
    base = grads(loss, hint=1.0)
    got = grads(loss, hint=hint)
    for a, b in zip(got, base):
        torch.testing.assert_close(a, b, rtol=2e-7, atol=0)


def test_right_hint_matches_reference():
    logits, target, mu, logvar = make(batch=5)
    MEAN(elbits.elbo_terms(logits, target, mu, logvar)).backward()  # default hint 1/B is right here
    x = logits.detach().double().requires_grad_(True)
    MEAN(ref.elbo_terms(x, target, mu.detach().double(), logvar.detach().double())).backward()
    torch.testing.assert_close(logits.grad.double(), x.grad, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("bad", [0.0, float("nan"), float("inf"), float("-inf"), 1e-30, -1e-25, 1e25])
def test_bad_hint_is_an_error(bad):
    logits, target, mu, logvar = make()
    with pytest.raises(ValueError, match="recon_grad_hint"):
        elbits.elbo_terms(logits, target, mu, logvar, recon_grad_hint=bad)


def test_reused_buffer_never_overwrites_a_live_gradient():
    logits, target, mu, logvar = make(batch=4, n=4096)
    MEAN(elbits.elbo_terms(logits, target, mu, logvar)).backward()
    first = logits.grad  # still referenced: its storage must not be handed out again
    kept = first.clone()
    logits.grad = None
    MEAN(elbits.elbo_terms(logits, 1 - target, mu, logvar)).backward()
    assert torch.equal(first, kept)
    assert not torch.equal(logits.grad, first)


def test_interleaved_graphs_keep_their_own_gradients():
    a = make(batch=2, n=300, seed=1)
    b = make(batch=2, n=300, seed=2)
    la = SUM(elbits.elbo_terms(*a))
    lb = SUM(elbits.elbo_terms(*b))
    la.backward()
    lb.backward()
    for inputs in (a, b):
        x = inputs[0].detach().double().requires_grad_(True)
        SUM(ref.elbo_terms(x, inputs[1], inputs[2].detach().double(), inputs[3].detach().double())).backward()
        torch.testing.assert_close(inputs[0].grad.double(), x.grad, rtol=1e-5, atol=1e-7)


def test_buffer_reuse_across_steps_stays_correct():
    logits, target, mu, logvar = make(batch=4, n=1000)
    for step in range(4):
        logits.grad = None
        t = target if step % 2 == 0 else 1 - target
        MEAN(elbits.elbo_terms(logits, t, mu, logvar)).backward()
        x = logits.detach().double().requires_grad_(True)
        MEAN(ref.elbo_terms(x, t, mu.detach().double(), logvar.detach().double())).backward()
        torch.testing.assert_close(logits.grad.double(), x.grad, rtol=1e-5, atol=1e-7)
    elbits.release_buffers()


def test_eager_twin_matches_the_custom_op():
    logits, target, mu, logvar = make(batch=3, n=77)
    eager = elbits.elbo_terms(logits, target, mu, logvar)
    x2, m2, l2 = (t.detach().clone().requires_grad_(True) for t in (logits, mu, logvar))
    recon, kl, _, _ = bernoulli_elbo(x2, target, m2, l2, 1 / 3, True, True)  # through the dispatcher
    assert torch.equal(eager.recon, recon) and torch.equal(eager.kl, kl)
    # the twin ran (not the dispatcher), and the direct call did go through the custom op
    assert type(eager.recon.grad_fn).__name__ == "EagerBackward"
    assert "elbits_bernoulli_elbo" in type(recon.grad_fn).__name__
    WEIGHTED(eager).backward()
    (recon * torch.tensor([0.3, -2.0, 7.0])).sum().backward()
    assert torch.equal(logits.grad, x2.grad)


def test_compiled_path_matches_eager():
    logits, target, mu, logvar = make(batch=3, n=64)
    # kl.sum(1): Dynamo before torch 2.13 cannot read the kl_total property (test_hostile_autograd.py)
    f = torch.compile(
        lambda *a: (lambda t: (t.recon + t.kl.sum(1)).mean())(elbits.elbo_terms(*a)), fullgraph=True
    )
    f(logits, target, mu, logvar).backward()
    got = logits.grad.clone()
    logits.grad = None
    MEAN(elbits.elbo_terms(logits, target, mu, logvar)).backward()
    torch.testing.assert_close(got, logits.grad, rtol=1e-6, atol=1e-9)


def test_threads_never_share_a_buffer():
    import sys
    import threading

    old_interval, old_threads = sys.getswitchinterval(), torch.get_num_threads()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    torch.set_num_threads(1)
    bad = []

    def worker(seed):
        logits, target, mu, logvar = make(batch=2, n=20000, seed=seed)
        x = logits.detach().double().requires_grad_(True)
        MEAN(ref.elbo_terms(x, target, mu.detach().double(), logvar.detach().double())).backward()
        for _ in range(150):
            logits.grad = None
            MEAN(elbits.elbo_terms(logits, target, mu, logvar)).backward()
            if (logits.grad.double() - x.grad).abs().max() > 1e-5:
                bad.append(seed)
                return

    try:
        threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old_interval)
        torch.set_num_threads(old_threads)
    assert not bad


def test_buffer_goes_back_to_the_cache_only_once_handed_out():
    # Deterministic version of the race above: pretend another thread asks for the
    # same slot at the first moment the buffer is back in the cache.
    import sys

    from elbits.ops import buffers

    cpu, shape = torch.device("cpu"), (2, 1000)
    buffers.release_buffers()
    buffers.gradient_buffer("race", shape, torch.float32, cpu)  # now cached, and free once dropped
    asked = []

    def tracer(frame, event, arg):
        if frame.f_code is not buffers.gradient_buffer.__code__:
            return None

        def local(frame, event, arg):
            back = buffers._cache.get("race")
            if event == "line" and not asked and back is not None and back is frame.f_locals.get("buf"):
                asked.append(None)
                asked[0] = buffers.gradient_buffer("race", shape, torch.float32, cpu)
            return local

        return local

    sys.settrace(tracer)
    try:
        mine = buffers.gradient_buffer("race", shape, torch.float32, cpu)
    finally:
        sys.settrace(None)
    buffers.release_buffers()
    assert asked and asked[0] is not None
    assert asked[0].data_ptr() != mine.data_ptr()


def test_shared_memory_gradient_is_not_reused():
    # A .grad sent to another process has its storage moved to shared memory; that
    # process keeps reading it after the sender drops its reference. Map the memory
    # as that process would (its own mapping of the shared file), holding no tensor
    # here: the read stays valid whether or not autograd adopted the buffer as .grad
    # (torch 2.4 copies it, and then the .grad's own memory is what is shared).
    import mmap
    import os

    import numpy as np

    logits, target, mu, logvar = make(batch=2, n=4096)
    MEAN(elbits.elbo_terms(logits, target, mu, logvar)).backward()
    shared = logits.grad.share_memory_()
    kept = shared.clone()
    fd, size = shared.untyped_storage()._share_fd_cpu_()
    remote = mmap.mmap(os.dup(fd), size, access=mmap.ACCESS_READ)
    del shared
    logits.grad = None
    MEAN(elbits.elbo_terms(logits, 1 - target, mu, logvar)).backward()
    assert np.array_equal(np.frombuffer(remote, dtype=np.float32)[: kept.numel()], kept.flatten().numpy())


def test_inference_mode_call_does_not_poison_training():
    logits, target, mu, logvar = make(batch=2, n=300)
    with torch.inference_mode(), torch.enable_grad():
        try:
            elbits.elbo_terms(logits, target, mu, logvar)
        except RuntimeError:
            pass  # saving inference tensors for backward may fail there; what matters is next
    for t in elbits.ops.buffers._cache.values():
        assert not t.is_inference()
    MEAN(elbits.elbo_terms(logits, target, mu, logvar)).backward()
    assert logits.grad is not None


def test_half_precision_gradients_are_not_prescaled():
    # fp16 AMP-style: a large loss scale after the mean. Storing g/B in fp16 would
    # underflow small gradients before backward multiplies them by scale/B.
    logits, target, mu, logvar = make(batch=64, n=256, dtype=torch.float16)
    got = []
    for hint in (None, 1.0):
        logits.grad = None
        crit = (
            elbits.ELBOLoss()
            if hint is None
            else (lambda *a: MEAN(elbits.elbo_terms(*a, recon_grad_hint=1.0)))
        )
        (crit(logits, target, mu, logvar) * 65536.0).backward()
        got.append(logits.grad.clone())
    assert torch.equal(got[0], got[1])


def test_jit_trace_records_the_custom_op():
    logits, target, mu, logvar = make(batch=2, n=16)

    def f(x, t, m, lv):
        terms = elbits.elbo_terms(x, t, m, lv)
        return terms.recon, terms.kl

    traced = torch.jit.trace(f, (logits.detach(), target, mu.detach(), logvar.detach()), check_trace=False)
    assert "elbits::bernoulli_elbo" in str(traced.graph)


def test_compile_with_changing_batch_size():
    f = torch.compile(lambda *a: MEAN(elbits.elbo_terms(*a)), dynamic=True)
    for batch in (8, 5, 3):
        logits, target, mu, logvar = make(batch=batch, n=64, seed=batch)
        f(logits, target, mu, logvar).backward()
        x = logits.detach().double().requires_grad_(True)
        MEAN(ref.elbo_terms(x, target, mu.detach().double(), logvar.detach().double())).backward()
        torch.testing.assert_close(logits.grad.double(), x.grad, rtol=1e-5, atol=1e-7)
