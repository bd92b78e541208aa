"""elbits.entropy: exact factor/joint/DAG entropies, de-duplication, pixel marginals and colour bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from elbits import entropy as E
from elbits.data import colour_sprites
from elbits.data import dsprites as ds
from elbits.units import LN2


def test_dsprites_factor_entropy_exact():
    h = E.factor_entropy(ds.SIZES)
    assert h.bits == pytest.approx(math.log2(737280), abs=1e-12)
    assert round(h.bits, 2) == 19.49
    assert h.nats == pytest.approx(math.log(737280))
    assert E.dsprites_factor_entropy().bits == pytest.approx(h.bits)
    assert "bits" in str(h) and "nats" in str(h)


def test_factor_entropy_marginals_and_validation():
    h = E.factor_entropy([[0.5, 0.5], [0.25] * 4, np.array([1.0])])
    assert h.bits == pytest.approx(3.0)
    assert E.factor_entropy([[0.9, 0.1]]).nats == pytest.approx(-(0.9 * math.log(0.9) + 0.1 * math.log(0.1)))
    with pytest.raises(ValueError):
        E.factor_entropy([[0.5, 0.6]])
    with pytest.raises(ValueError):
        E.factor_entropy([0])


@settings(derandomize=True, max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 12), min_size=1, max_size=4))
def test_independent_joint_equals_sum_of_sizes(sizes):
    joint = np.ones(sizes) / np.prod(sizes)
    assert E.joint_entropy(joint).nats == pytest.approx(E.factor_entropy(sizes).nats, abs=1e-9)


def test_dag_chain_rule_exact():
    pa = np.array([0.3, 0.7])
    pb_a = np.array([[0.5, 0.5, 0.0], [0.1, 0.1, 0.8]])
    pc_ab = np.full((2, 3, 2), 0.5)
    pc_ab[1, 2] = [1.0, 0.0]
    res = E.dag_entropy({"C": (pc_ab, ("A", "B")), "B": E.CPT(pb_a, ("A",)), "A": pa})
    ha = -(0.3 * math.log(0.3) + 0.7 * math.log(0.7))
    hb_a = 0.3 * math.log(2) + 0.7 * -(0.2 * math.log(0.1) + 0.8 * math.log(0.8))
    p_ab = pa[:, None] * pb_a
    hc_ab = (p_ab.sum() - p_ab[1, 2]) * math.log(2)
    assert res.terms["A"].nats == pytest.approx(ha)
    assert res.terms["B"].nats == pytest.approx(hb_a)
    assert res.terms["C"].nats == pytest.approx(hc_ab)
    joint = p_ab[:, :, None] * pc_ab
    assert res.total.nats == pytest.approx(E.joint_entropy(joint).nats)


def test_dag_validation():
    with pytest.raises(ValueError, match="cycle"):
        E.dag_entropy({"A": (np.full((2, 2), 0.5), ("B",)), "B": (np.full((2, 2), 0.5), ("A",))})
    with pytest.raises(ValueError, match="sum to 1"):
        E.dag_entropy({"A": np.array([0.5, 0.4])})
    with pytest.raises(ValueError, match="shape"):
        E.dag_entropy({"A": np.array([0.5, 0.5]), "B": (np.full((3, 2), 0.5), ("A",))})
    with pytest.raises(ValueError, match="no table"):
        E.dag_entropy({"B": (np.full((2, 2), 0.5), ("A",))})


def test_plugin_and_miller_madow():
    x = np.array([0, 0, 1, 2, 2, 2])
    est = E.plugin_entropy(x)
    p = np.array([2, 1, 3]) / 6
    h = float(-(p * np.log(p)).sum())
    assert est.plugin.nats == pytest.approx(h)
    assert est.miller_madow.nats == pytest.approx(h + 2 / 12)
    assert est.distinct == 3 and est.samples == 6 and "biased low" in est.caveat
    rows = E.plugin_entropy(np.array([[0, 1], [0, 1], [1, 0], [1, 1]]))
    assert rows.plugin.bits == pytest.approx(1.5)


def test_empirical_entropy_of_dsprites_subset_matches_known_duplicates():
    # Orientation classes 0 and 39 are the same angle (0 and 2 pi): those pairs render identically.
    orients = [0, 5, 39]
    classes = np.array(
        [
            [0, s, c, o, x, y]
            for s in range(3)
            for c in range(6)
            for o in orients
            for x in (3, 20)
            for y in (7, 28)
        ]
    )
    imgs = ds.render(classes)
    res = E.empirical_entropy(imgs)
    n = len(classes)
    assert res.total == n == 216
    assert res.distinct == n // 3 * 2  # the {0, 39} pairs merge
    # From the factor grid: 72 images of probability 2/N, 72 of 1/N.
    want = math.log(n) - 72 * 2 * math.log(2) / n
    assert res.entropy.nats == pytest.approx(want)
    # Streaming over batches gives the same answer.
    batched = E.empirical_entropy(imgs[i : i + 50] for i in range(0, n, 50))
    assert batched == res
    assert E.empirical_entropy(imgs, compact_every=16) == res


def test_marginal_pixel_entropy_binary_and_256():
    x = np.array([[0, 1, 1], [0, 0, 1], [0, 1, 1], [0, 0, 1]], np.uint8)
    m = E.marginal_pixel_entropy(x)
    assert m.levels == 2 and m.total.bits == pytest.approx(1.0)
    assert m.per_pixel_bits.tolist() == pytest.approx([0.0, 1.0, 0.0])
    y = np.array([[0], [255], [7], [7]], np.uint8)
    m256 = E.marginal_pixel_entropy(y)
    assert m256.levels == 256 and m256.total.bits == pytest.approx(1.5)
    tc = E.total_correlation(m, E.empirical_entropy(x))
    assert tc.bits == pytest.approx(0.0, abs=1e-12)  # only one pixel varies: no correlation
    pair = np.array([[0, 0], [1, 1]], np.uint8)  # two copies of one fair bit: TC = 1 bit
    assert E.total_correlation(
        E.marginal_pixel_entropy(pair), E.empirical_entropy(pair)
    ).bits == pytest.approx(1.0)


def test_total_correlation_nonnegative_on_dsprites_subset():
    imgs = ds.render_index(np.arange(0, ds.NUM_IMAGES, 997))
    m, h = E.marginal_pixel_entropy(imgs), E.empirical_entropy(imgs)
    assert E.total_correlation(m, h).nats > 0
    assert m.total.nats > h.entropy.nats


@pytest.fixture(scope="module")
def colour_set():
    return colour_sprites(colours=3, positions=4)


def test_colour_set_known_entropy_and_bounds(colour_set):
    data = colour_set
    n = len(data.images)
    assert n == 3 * 3 * 3 * 4 * 4 and data.images.shape[1:] == (64, 64, 3)
    truth = E.empirical_entropy(data.images)
    assert truth.distinct == n  # every factor combination is a distinct image
    assert truth.entropy.bits == pytest.approx(data.factor_bits)
    b = E.colour_bounds(data.images)
    assert b.log2_n.bits == pytest.approx(truth.entropy.bits)
    for bound in (b.log2_n, b.raw, b.png, b.lzma):
        assert bound.bits >= truth.entropy.bits - 1e-9
    assert b.raw.bits == pytest.approx(8 * 64 * 64 * 3)
    assert b.png.bits < b.raw.bits and b.lzma.bits < b.raw.bits
    assert b.tighter_codec in ("png", "lzma") and b.tightest == "log2_n"
    m = E.marginal_pixel_entropy(data.images)
    assert m.levels == 256 and m.total.bits >= truth.entropy.bits


def test_results_carry_units():
    h = E.factor_entropy([2])
    assert h.bits == pytest.approx(1.0) and h.nats == pytest.approx(LN2)
    res = E.empirical_entropy(torch.zeros(3, 4, dtype=torch.uint8))
    assert res.entropy.bits == 0.0 and res.distinct == 1 and res.entropy.per == "image"
