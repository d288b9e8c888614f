"""rl.kl.kl_penalty: values and gradients checked by hand."""

from __future__ import annotations

import math

import pytest
import torch

from rl.kl import KL_KINDS, kl_penalty

LP = [[-1.0, -0.5, -2.0]]
REF = [[-1.5, -0.5, -1.0]]
# d = lp - ref = [0.5, 0.0, -1.0]


def _inputs():
    lp = torch.tensor(LP, dtype=torch.float64, requires_grad=True)
    ref = torch.tensor(REF, dtype=torch.float64)
    return lp, ref


def test_k1_abs_k2_values_and_grads():
    lp, ref = _inputs()
    assert kl_penalty(lp, ref, "k1").tolist() == [[0.5, 0.0, -1.0]]
    assert kl_penalty(lp, ref, "abs").tolist() == [[0.5, 0.0, 1.0]]
    k2 = kl_penalty(lp, ref, "k2")
    assert k2.tolist() == [[0.125, 0.0, 0.5]]
    (g,) = torch.autograd.grad(k2.sum(), lp)
    assert g.tolist() == [[0.5, 0.0, -1.0]]  # d/dlp of d^2/2 is d
    (g1,) = torch.autograd.grad(kl_penalty(lp, ref, "k1").sum(), lp)
    assert g1.tolist() == [[1.0, 1.0, 1.0]]


def test_k3_value_and_grad_by_hand():
    lp, ref = _inputs()
    k3 = kl_penalty(lp, ref, "k3")
    # x = ref - lp = [-0.5, 0, 1]; exp(x) - x - 1
    expect = [math.exp(-0.5) + 0.5 - 1.0, 0.0, math.e - 2.0]
    assert k3[0].tolist() == pytest.approx(expect, abs=1e-12)
    (g,) = torch.autograd.grad(k3.sum(), lp)
    # d/dlp (exp(ref-lp) - (ref-lp) - 1) = 1 - exp(ref - lp)
    assert g[0].tolist() == pytest.approx([1 - math.exp(-0.5), 0.0, 1 - math.e], abs=1e-12)


def test_k3_is_clamped_at_10():
    lp = torch.tensor([[-20.0]], dtype=torch.float64, requires_grad=True)
    ref = torch.tensor([[-1.0]], dtype=torch.float64)  # x = 19 -> exp(19) huge -> clamp at 10
    out = kl_penalty(lp, ref, "k3")
    assert out.item() == 10.0
    (g,) = torch.autograd.grad(out.sum(), lp)
    assert g.item() == 0.0


def test_k3_plus_value_of_k3_gradient_of_k2():
    lp, ref = _inputs()
    out = kl_penalty(lp, ref, "k3+")
    assert out[0].tolist() == pytest.approx([math.exp(-0.5) - 0.5, 0.0, math.e - 2.0], abs=1e-12)
    (g,) = torch.autograd.grad(out.sum(), lp)
    assert g.tolist() == [[0.5, 0.0, -1.0]]


def test_aliases_match_names():
    lp, ref = _inputs()
    for alias, name in (("kl", "k1"), ("mse", "k2"), ("low_var_kl", "k3")):
        assert torch.equal(kl_penalty(lp, ref, alias), kl_penalty(lp, ref, name))


@pytest.mark.parametrize("kind", ["k1", "abs", "k2", "k3", "k3+"])
def test_gradcheck(kind):
    g = torch.Generator().manual_seed(0)
    lp = (torch.randn(2, 3, generator=g, dtype=torch.float64) + 0.3).requires_grad_()
    ref = torch.randn(2, 3, generator=g, dtype=torch.float64)
    if kind == "k3+":  # gradient is k2's by design: check that path's derivative instead
        (gr,) = torch.autograd.grad(kl_penalty(lp, ref, kind).sum(), lp)
        assert torch.allclose(gr, lp.detach() - ref)
    else:
        assert torch.autograd.gradcheck(lambda x: kl_penalty(x, ref, kind), (lp,))


def test_bad_kind_and_shapes_raise():
    lp, ref = _inputs()
    with pytest.raises(ValueError, match="unknown KL kind 'k4'"):
        kl_penalty(lp, ref, "k4")
    with pytest.raises(ValueError, match="same shape"):
        kl_penalty(lp, ref[:, :2], "k1")
    assert "k3+" in KL_KINDS


# rl.losses.terms (the trainer's additive terms) are tested here, next to the estimator they use.
def test_entropy_bonus_by_hand():
    from rl.losses.terms import entropy_bonus

    ent = torch.tensor([[1.0, 2.0, 9.0], [3.0, 9.0, 9.0]], dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    out = entropy_bonus(ent, mask, coef=0.01)
    assert out.item() == pytest.approx(-0.01 * (1 + 2 + 3) / 3)
    (g,) = torch.autograd.grad(out, ent)
    assert torch.allclose(g, torch.tensor([[-1, -1, 0], [-1, 0, 0]], dtype=torch.float64) * 0.01 / 3)
    seq = entropy_bonus(ent, mask, coef=1.0, agg="seq-mean-token-mean")
    assert seq.item() == pytest.approx(-((1 + 2) / 2 + 3) / 2, rel=1e-7)


def test_kl_loss_by_hand():
    from rl.losses.terms import kl_loss

    lp, ref = _inputs()  # d = [0.5, 0, -1]
    mask = torch.tensor([[1, 1, 0]])
    out = kl_loss(lp, ref, mask, coef=0.1)  # k3 default on valid tokens 0, 1
    assert out.item() == pytest.approx(0.1 * (math.exp(-0.5) + 0.5 - 1.0 + 0.0) / 2, rel=1e-12)
    (g,) = torch.autograd.grad(out, lp)
    assert g[0].tolist() == pytest.approx([0.1 * (1 - math.exp(-0.5)) / 2, 0.0, 0.0], abs=1e-15)
    assert kl_loss(lp, ref, mask, kind="k1", coef=1.0).item() == pytest.approx(0.25)
