"""Clip-Cov and KL-Cov: hand-computed values, selection counters, gradients, padding, (B, 1) shapes."""

from __future__ import annotations

import math

import pytest
import torch

from rl.losses import policy_loss
from rl.losses.covariance import token_covariance

F64 = torch.float64
# logp = -2 + dev, dev sums to 0, so mean(logp) = -2; A has mean 0.
DEV = [[0.5, 0.0, -1.5], [0.25, -0.75, 1.5]]
LP = [[-2 + v for v in row] for row in DEV]  # [[-1.5, -2, -3.5], [-1.75, -2.75, -0.5]]
A = [[4.0] * 3, [-4.0] * 3]
R = [[1.5, 1.0, 0.9], [1.0, 1.1, 0.5]]
# cov = A * dev = [[2, 0, -6], [-1, 3, -6]]
COV = [[2.0, 0.0, -6.0], [-1.0, 3.0, -6.0]]


def _inputs(lp=LP, ratios=R, adv=A):
    lp_t = torch.tensor(lp, dtype=F64, requires_grad=True)
    old = lp_t.detach() - torch.log(torch.tensor(ratios, dtype=F64))
    return lp_t, old, torch.tensor(adv, dtype=F64)


def _grad(loss, x):
    (g,) = torch.autograd.grad(loss, x)
    return g


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_token_covariance_by_hand():
    lp, _, adv = _inputs()
    assert torch.allclose(token_covariance(adv, lp, torch.ones(2, 3)), torch.tensor(COV, dtype=F64))
    # padding is excluded from the means: valid = first two tokens of row 0 only
    mask = torch.tensor([[1, 1, 0], [0, 0, 0]])
    cov = token_covariance(adv, lp, mask)  # mean A = 4, so A - mean = 0 on row 0
    assert cov[0, :2].tolist() == [0.0, 0.0]


def test_clip_cov_by_hand():
    lp, old, adv = _inputs()
    loss, met = policy_loss("clip_cov", lp, old, adv, torch.ones(2, 3), generator=_gen())
    # token losses max(-A r, -A clamp(r, .8, 1.2)):
    #  (0,0) r=1.5 -> -4.8 (clipped, so not a candidate although cov = 2 in (1, 5))
    #  (0,1) -4; (0,2) -3.6; (1,0) 4; (1,1) r=1.1 -> 4.4 but cov = 3: the only candidate, n = max(1, 0) = 1
    #  -> multiplied by 0; (1,2) r=0.5, A<0 -> max(2, 3.2) = 3.2 (clipped)
    assert loss.item() == pytest.approx((-4.8 - 4 - 3.6 + 4 + 0 + 3.2) / 6, rel=1e-12)
    expect = torch.tensor([[0.0, -4.0, -3.6], [4.0, 0.0, 0.0]], dtype=F64) / 6  # -A r on the live tokens
    assert torch.allclose(_grad(loss, lp), expect)
    assert met["clip_cov/n_detached"] == 1 and met["clip_cov/n_candidates"] == 1
    assert met["clip_cov/cov_mean"] == pytest.approx(-8 / 6)
    assert met["clip_cov/cov_max"] == pytest.approx(3.0)
    assert met["clipfrac_high"] == pytest.approx(1 / 6) and met["clipfrac_low"] == pytest.approx(1 / 6)


def test_clip_cov_random_choice_is_seeded_and_counted():
    # ratio 1.0 at (0,0) as well: two candidates (cov 2 and 3), one is detached
    ratios = [[1.0, 1.0, 0.9], [1.0, 1.1, 0.5]]
    lp, old, adv = _inputs(ratios=ratios)
    picks = set()
    for seed in range(12):
        loss, met = policy_loss("clip_cov", lp, old, adv, torch.ones(2, 3), generator=_gen(seed))
        assert met["clip_cov/n_candidates"] == 2 and met["clip_cov/n_detached"] == 1
        g = _grad(loss, lp)
        zeroed = {(i, j) for i in range(2) for j in range(2) if g[i, j] == 0 and (i, j) in {(0, 0), (1, 1)}}
        assert len(zeroed) == 1
        picks |= zeroed
        again, _ = policy_loss("clip_cov", lp, old, adv, torch.ones(2, 3), generator=_gen(seed))
        assert again.item() == loss.item()
    assert picks == {(0, 0), (1, 1)}  # both get chosen across seeds
    # a larger ratio: n = max(1, floor(0.5 * 6)) = 3 >= 2 candidates -> both detached
    loss, met = policy_loss("clip_cov", lp, old, adv, torch.ones(2, 3), clip_cov_ratio=0.5, generator=_gen())
    assert met["clip_cov/n_detached"] == 2
    assert loss.item() == pytest.approx((0 - 4 - 3.6 + 4 + 0 + 3.2) / 6)


def test_clip_cov_bounds_and_errors():
    lp, old, adv = _inputs()
    _, met = policy_loss("clip_cov", lp, old, adv, torch.ones(2, 3), clip_cov_ub=2.5, generator=_gen())
    assert met["clip_cov/n_candidates"] == 0 and met["clip_cov/n_detached"] == 0  # cov 3 no longer < ub
    with pytest.raises(ValueError, match="clip_cov_lb"):
        policy_loss("clip_cov", lp, old, adv, torch.ones(2, 3), clip_cov_lb=5.0, clip_cov_ub=1.0)
    with pytest.raises(TypeError, match="did you mean 'clip_cov_ratio'"):
        policy_loss("clip_cov", lp, old, adv, torch.ones(2, 3), clip_cov_ration=0.1)


def test_kl_cov_by_hand():
    lp, old, adv = _inputs()
    loss, met = policy_loss(
        "kl_cov", lp, old, adv, torch.ones(2, 3), kl_cov_ratio=0.34
    )  # k = floor(2.04) = 2
    # -A r everywhere (no clip): [[-6, -4, -3.6], [4, 4.4, 2]]; top-2 covariance: (1,1) = 3, (0,0) = 2
    # add |d| there: ln 1.1 and ln 1.5
    assert loss.item() == pytest.approx(
        (-6 - 4 - 3.6 + 4 + 4.4 + 2 + math.log(1.1) + math.log(1.5)) / 6, rel=1e-12
    )
    # gradient -A r + coef * sign(d) on the top-k tokens
    expect = torch.tensor([[-6 + 1, -4, -3.6], [4, 4.4 + 1, 2]], dtype=F64) / 6
    assert torch.allclose(_grad(loss, lp), expect)
    assert met["kl_cov/k"] == 2
    assert met["kl_cov/cov_max"] == pytest.approx(3.0) and met["kl_cov/cov_mean"] == pytest.approx(-8 / 6)
    assert met["kl_cov/abs_kl"] == pytest.approx(
        (math.log(1.5) + math.log(1 / 0.9) + math.log(1.1) + math.log(2)) / 6
    )
    # default ratio 2e-3 -> k = 1: only (1,1), coef 0.5
    loss, met = policy_loss("kl_cov", lp, old, adv, torch.ones(2, 3), kl_cov_coef=0.5)
    assert met["kl_cov/k"] == 1
    assert loss.item() == pytest.approx((-6 - 4 - 3.6 + 4 + 4.4 + 2 + 0.5 * math.log(1.1)) / 6, rel=1e-12)


def _random(seed, b=3, t=5):
    g = torch.Generator().manual_seed(seed)
    old = -torch.rand(b, t, generator=g, dtype=F64) * 3 - 0.1
    lp = (old + 0.3 * torch.randn(b, t, generator=g, dtype=F64)).requires_grad_()
    adv = (torch.randn(b, 1, generator=g, dtype=F64) * 3).expand(b, t).clone()
    return lp, old, adv


MASK = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0]])


@pytest.mark.parametrize(
    "name, cfg", [("clip_cov", {"clip_cov_ratio": 0.2}), ("kl_cov", {"kl_cov_ratio": 0.2})]
)
def test_gradcheck_with_selection_fixed(name, cfg):
    lp, old, adv = _random(3)
    # fresh identically-seeded generator on every call: the same tokens are picked for every perturbation
    _, met = policy_loss(name, lp, old, adv, MASK, generator=_gen(), **cfg)
    if name == "clip_cov":
        assert met["clip_cov/n_detached"] >= 1  # the selection is really exercised
    fn = lambda x: policy_loss(name, x, old, adv, MASK, generator=_gen(), **cfg)[0]
    assert torch.autograd.gradcheck(fn, (lp,))


@pytest.mark.parametrize("name", ["clip_cov", "kl_cov"])
def test_padding_does_not_change_loss(name):
    lp, old, adv = _random(4)
    cfg = {"clip_cov_ratio": 0.2} if name == "clip_cov" else {"kl_cov_ratio": 0.2}
    base, met = policy_loss(name, lp, old, adv, MASK, generator=_gen(), agg="seq-mean-token-mean", **cfg)
    pad = lambda x, v: torch.cat([x, torch.full((3, 2), v, dtype=x.dtype)], 1)
    plp = pad(lp.detach(), 9.0).requires_grad_()
    padded, met_p = policy_loss(
        name,
        plp,
        pad(old, -30.0),
        pad(adv, 50.0),
        pad(MASK, 0),
        generator=_gen(),
        agg="seq-mean-token-mean",
        **cfg,
    )
    assert padded.item() == pytest.approx(base.item(), rel=1e-12)
    assert met_p == pytest.approx(met)
    g = _grad(padded, plp)
    assert torch.allclose(g[:, :5], _grad(base, lp)) and torch.all(g[:, 5:] == 0)


def test_action_level_shapes():
    # (B, 1): 4 actions; cov = (A - 0) * (lp - mean lp)
    lp = torch.log(torch.tensor([[0.5], [0.2], [0.4], [0.1]], dtype=F64)).requires_grad_()
    old = lp.detach().clone()
    adv = torch.tensor([[1.0], [-1.0], [1.0], [-1.0]], dtype=F64)
    loss, met = policy_loss("kl_cov", lp, old, adv, torch.ones(4, 1))
    assert met["kl_cov/k"] == 1 and loss.item() == pytest.approx(0.0)  # r = 1, |d| = 0, mean A = 0
    loss, met = policy_loss("clip_cov", lp, old, adv, torch.ones(4, 1), clip_cov_lb=-1.0, generator=_gen())
    assert met["clip_cov/n_detached"] == 1
    assert loss.shape == ()
