"""STEER, HAPO, BAPO: hand-computed values, gradients, metrics, the vectorised BAPO search against the
reference loop, padding and (B, 1) shapes."""

from __future__ import annotations

import math

import pytest
import torch

from rl.losses import policy_loss
from rl.losses.shaping import bapo_bounds, hapo_entropy_scale, steer_weights

F64 = torch.float64


def _t(x):
    return torch.tensor(x, dtype=F64)


def _grad(loss, x):
    (g,) = torch.autograd.grad(loss, x)
    return g


# ------------------------------------------------------------------------------------------------- STEER
# p = old p (r = 1); H = c - ln p so that ln p + H = c; Omega = |A (1 - p) c|
P = [0.5, 0.5, 0.25, 0.8]
C = [1.0, 0.5, 2.0, 1.0]
A_STEER = [1.0, 1.0, -1.0, 2.0]
OMEGA = [0.5, 0.25, 1.5, 0.4]  # |1*.5*1|, |1*.5*.5|, |-1*.75*2|, |2*.2*1|


def _steer_inputs():
    lp = _t([[math.log(p) for p in P]]).requires_grad_()
    ent = _t([[c - math.log(p) for p, c in zip(P, C)]])
    return lp, lp.detach().clone(), _t([A_STEER]), ent


def test_steer_linear_by_hand():
    lp, old, adv, ent = _steer_inputs()
    # linear map: w = 1.2 - (Omega - 0.25) * 0.4 / 1.25: high Omega -> low weight
    w = [1.2 - (o - 0.25) * 0.32 for o in OMEGA]  # [1.12, 1.2, 0.8, 1.152]
    got = steer_weights(lp, old, adv, ent, torch.ones(1, 4))
    assert got[0].tolist() == pytest.approx(w, rel=1e-12)
    loss, met = policy_loss("steer", lp, old, adv, torch.ones(1, 4), entropy=ent)
    tok = [
        -a * 1.0 * wi for a, wi in zip(A_STEER, w)
    ]  # r = 1: vanilla loss is -A (dual clip min(3, 1) inert)
    assert loss.item() == pytest.approx(sum(tok) / 4, rel=1e-12)
    assert _grad(loss, lp)[0].tolist() == pytest.approx([t / 4 for t in tok], rel=1e-12)
    assert met["steer/w_min"] == pytest.approx(0.8) and met["steer/w_max"] == pytest.approx(1.2)
    assert met["steer/w_mean"] == pytest.approx(sum(w) / 4)


def test_steer_exp_by_hand():
    lp, old, adv, ent = _steer_inputs()
    k = -math.log(0.8) / 1.5
    w = [max(0.8, min(1.0, math.exp(-k * o))) for o in OMEGA]
    assert w[2] == pytest.approx(0.8)
    loss, _ = policy_loss("steer", lp, old, adv, torch.ones(1, 4), entropy=ent, steer_mode="exp")
    assert loss.item() == pytest.approx(sum(-a * wi for a, wi in zip(A_STEER, w)) / 4, rel=1e-12)


def test_steer_degenerate_and_errors():
    lp, old, adv, ent = _steer_inputs()
    same = torch.zeros(1, 4, dtype=F64)  # A = 0 -> Omega = 0 everywhere -> (0.8 + 1.2) / 2
    assert steer_weights(lp, old, same, ent, torch.ones(1, 4))[0].tolist() == pytest.approx([1.0] * 4)
    with pytest.raises(ValueError, match="needs entropy"):
        policy_loss("steer", lp, old, adv, torch.ones(1, 4))
    with pytest.raises(ValueError, match="steer_mode"):
        policy_loss("steer", lp, old, adv, torch.ones(1, 4), entropy=ent, steer_mode="cubic")


# -------------------------------------------------------------------------------------------------- HAPO
# log-entropies [-2, -1, 0, 1, 3]: pivot 0.8 -> sorted index round(3.2) = 3 -> med = 1;
# h = [-3, -2, -1, 0, 2] / std -> h_hat = [-1, -2/3, -1/3, 0, 1] (std cancels)
ELL = [-2.0, -1.0, 0.0, 1.0, 3.0]
H_HAT = [-1.0, -2 / 3, -1 / 3, 0.0, 1.0]


def test_hapo_entropy_scale_by_hand():
    ent = torch.exp(_t([ELL]))
    assert hapo_entropy_scale(ent, torch.ones(1, 5))[0].tolist() == pytest.approx(H_HAT, abs=1e-12)
    # padding is excluded: valid [-2, -1, 0, 1] -> index round(2.4) = 2 -> med 0; h = [-2, -1, 0, 1]
    got = hapo_entropy_scale(ent, torch.tensor([[1, 1, 1, 1, 0]]))
    assert got[0, :4].tolist() == pytest.approx([-1.0, -0.5, 0.0, 1.0], abs=1e-12)


def test_hapo_by_hand():
    ent = torch.exp(_t([ELL]))
    ratios = [1.0, 1.3, 0.9, 1.05, 1.5]
    old = _t([[-1.0] * 5])
    lp = (old + torch.log(_t([ratios]))).requires_grad_()
    adv = torch.ones(1, 5, dtype=F64)
    loss, met = policy_loss("hapo", lp, old, adv, torch.ones(1, 5), entropy=ent)
    # eps_low' = .2 (1 - h) for h <= 0: [.4, 1/3, .2667, .2, .2]; eps_high' = .2 (1 + h) for h > 0: [.2]*4 + [.4]
    # A_e = 1 + h = [0, 1/3, 2/3, 1, 2]; band (1 - eps_low'/2, 1 + eps_high'/2)
    # t0 h=-1:   band (.8, 1.1), r=1 inside, h<=0 -> A_e = 0   -> loss 0
    # t1 h=-2/3: band (.833, 1.1), r=1.3 outside -> A = 1; bounds [2/3, 1.2] -> max(-1.3, -1.2) = -1.2 (clipped)
    # t2 h=-1/3: band (.867, 1.1), r=.9 inside -> A_e = 2/3; inside [.733, 1.2] -> -0.6
    # t3 h=0:    band (.9, 1.1), r=1.05 inside -> A_e = 1 -> -1.05
    # t4 h=1:    band (.9, 1.2), r=1.5 outside, h>0 -> A_e = 2; bounds [.8, 1.4] -> max(-3, -2.8) = -2.8 (clipped)
    assert loss.item() == pytest.approx((0 - 1.2 - 0.6 - 1.05 - 2.8) / 5, abs=1e-12)
    assert _grad(loss, lp)[0].tolist() == pytest.approx([0, 0, -(2 / 3) * 0.9 / 5, -1.05 / 5, 0], abs=1e-12)
    assert met["clipfrac_high"] == pytest.approx(2 / 5)
    assert met["hapo/h_pos_frac"] == pytest.approx(1 / 5)
    assert met["hapo/eps_low_mean"] == pytest.approx((0.4 + 1 / 3 + 0.8 / 3 + 0.2 + 0.2) / 5)
    assert met["hapo/eps_high_mean"] == pytest.approx((0.2 * 4 + 0.4) / 5)
    assert met["hapo/adv_scale_mean"] == pytest.approx((0 + 1 + 2 / 3 + 1 + 2) / 5)


def test_hapo_without_adaptation_equals_vanilla():
    g = torch.Generator().manual_seed(5)
    old = -torch.rand(3, 6, generator=g, dtype=F64) * 2
    lp = (old + 0.4 * torch.randn(3, 6, generator=g, dtype=F64)).requires_grad_()
    adv = torch.randn(3, 6, generator=g, dtype=F64)
    ent = torch.rand(3, 6, generator=g, dtype=F64)
    mask = torch.tensor([[1] * 6, [1] * 3 + [0] * 3, [1] * 5 + [0]])
    off = {"hapo_adaptive_clip": False, "hapo_adaptive_adv": False}
    a, _ = policy_loss("hapo", lp, old, adv, mask, entropy=ent, **off)
    b, _ = policy_loss("vanilla", lp, old, adv, mask)
    assert a.item() == pytest.approx(b.item(), rel=1e-14)


# -------------------------------------------------------------------------------------------------- BAPO
def _reference_loop(ratio, adv, mask, *, count, target=0.5, c=3.0):
    """The reference's while-loops (BAPO policy_loss.py), with the DREX share rule P/(P+N) >= target."""

    def score(lo, hi):
        p = n = 0.0
        for r, a, m in zip(ratio.flatten().tolist(), adv.flatten().tolist(), mask.flatten().tolist()):
            if not m:
                continue
            if count == "live":
                if a > 0 and r <= hi:
                    p += r * a
                if a < 0 and lo <= r <= c:
                    n += r * -a
            else:
                if a >= 0:
                    p += min(r, hi) * a
                if a < 0:
                    n += max(r, lo) * -a
        return p, n

    lo, hi, lo_max, hi_max = 0.6, 1.2, 0.9, 3.0
    ok = lambda pn: pn[0] * (1 - target) >= target * pn[1]
    pn = score(lo, hi)
    while not ok(pn) and lo < lo_max:
        lo = min(lo + 0.05, lo_max)
        pn = score(lo, hi)
    while not ok(pn) and hi < hi_max:
        hi = min(hi + 0.05, hi_max)
        pn = score(lo, hi)
    share = pn[0] / (pn[0] + pn[1]) if pn[0] + pn[1] > 0 else 1.0
    return lo, hi, share


@pytest.mark.parametrize("count", ["live", "clamped"])
def test_bapo_vectorised_search_equals_reference_loop(count):
    for seed in range(25):
        g = torch.Generator().manual_seed(seed)
        ratio = torch.exp(0.5 * torch.randn(4, 7, generator=g, dtype=F64))
        adv = torch.randn(4, 1, generator=g, dtype=F64).expand(4, 7) - 0.3 * (seed % 3)
        mask = (torch.rand(4, 7, generator=g) > 0.2).to(torch.int64)
        got = bapo_bounds(ratio, adv, mask, count=count)
        want = _reference_loop(ratio, adv, mask, count=count)
        assert got[0] == want[0] and got[1] == want[1]  # same floats, same path
        assert got[2] == pytest.approx(want[2], rel=1e-12)


def test_bapo_by_hand():
    ratios = [1.0, 1.48, 0.5, 1.0]
    old = _t([[-1.0] * 4])
    lp = (old + torch.log(_t([ratios]))).requires_grad_()
    adv = _t([[1.0, 1.0, -2.0, -2.0]])
    loss, met = policy_loss("bapo", lp, old, adv, torch.ones(1, 4))
    # live counting. start (0.6, 1.2): P = 1 (r=1.48 > 1.2 excluded), N = 2 (r=.5 < .6 excluded) -> 1/3 < .5
    # c_low -> 0.9 changes nothing (N = 2); c_high reaches 1.5 >= 1.48 -> P = 2.48 >= N: stop
    assert met["bapo/c_low"] == pytest.approx(0.9) and met["bapo/c_high"] == pytest.approx(1.5)
    assert met["bapo/pos_ratio"] == pytest.approx(2.48 / 4.48)
    # loss with bounds [0.9, 1.5], c = 3: [-1, -1.48, max(1, 1.8) = 1.8, 2]
    assert loss.item() == pytest.approx((-1 - 1.48 + 1.8 + 2) / 4, rel=1e-12)
    assert _grad(loss, lp)[0].tolist() == pytest.approx([-1 / 4, -1.48 / 4, 0.0, 2 / 4], rel=1e-12)
    assert met["clipfrac_low"] == pytest.approx(1 / 4)
    # the reference's clamped counting never reaches the target here: N(0.9) = 2*.9 + 2*1 = 3.8 > P <= 2.48
    _, met = policy_loss("bapo", lp, old, adv, torch.ones(1, 4), bapo_count="clamped")
    assert (met["bapo/c_low"], met["bapo/c_high"]) == (0.9, 3.0)
    assert met["bapo/pos_ratio"] == pytest.approx(2.48 / (2.48 + 3.8))


def test_bapo_bad_bounds_raise():
    lp = torch.zeros(1, 2, dtype=F64)
    with pytest.raises(ValueError, match="BAPO bounds"):
        policy_loss("bapo", lp, lp, lp, torch.ones(1, 2), bapo_low_start=1.1)
    with pytest.raises(ValueError, match="bapo_target"):
        policy_loss("bapo", lp, lp, lp, torch.ones(1, 2), bapo_target=1.0)


# --------------------------------------------------------------------------------------------- shared checks
def _random(seed, b=3, t=5):
    g = torch.Generator().manual_seed(seed)
    old = -torch.rand(b, t, generator=g, dtype=F64) * 3 - 0.05
    lp = (old + 0.3 * torch.randn(b, t, generator=g, dtype=F64)).requires_grad_()
    adv = torch.randn(b, 1, generator=g, dtype=F64).expand(b, t).clone()
    ent = torch.rand(b, t, generator=g, dtype=F64) * 2 + 0.01
    return lp, old, adv, ent


MASK = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0]])


@pytest.mark.parametrize("name", ["steer", "hapo", "bapo"])
def test_gradcheck_with_selection_fixed(name):
    lp, old, adv, ent = _random(7)
    if name == "steer":
        # STEER weights read p = exp(logp) without gradient; for logp > 0 the clamp p <= 1 - 1e-8 holds them
        # constant, so the loss is smooth in logp there while the weights still differ per token (A, H vary).
        lp = (
            0.2 + 0.3 * torch.rand(3, 5, generator=torch.Generator().manual_seed(1), dtype=F64)
        ).requires_grad_()
        old = lp.detach() - 0.1 * torch.randn(3, 5, generator=torch.Generator().manual_seed(2), dtype=F64)
        w = steer_weights(lp, old, adv, ent, MASK)
        assert w[MASK != 0].std() > 0.05  # the weights really vary
    fn = lambda x: policy_loss(name, x, old, adv, MASK, entropy=ent)[0]
    assert torch.autograd.gradcheck(fn, (lp,))


@pytest.mark.parametrize("name", ["steer", "hapo", "bapo"])
def test_padding_does_not_change_loss(name):
    lp, old, adv, ent = _random(8)
    base, met = policy_loss(name, lp, old, adv, MASK, entropy=ent)
    pad = lambda x, v: torch.cat([x, torch.full((3, 2), v, dtype=x.dtype)], 1)
    plp = pad(lp.detach(), -0.001).requires_grad_()
    padded, met_p = policy_loss(
        name, plp, pad(old, -9.0), pad(adv, 40.0), pad(MASK, 0), entropy=pad(ent, 1e-6)
    )
    assert padded.item() == pytest.approx(base.item(), rel=1e-12)
    assert met_p == pytest.approx(met)
    g = _grad(padded, plp)
    assert torch.allclose(g[:, :5], _grad(base, lp)) and torch.all(g[:, 5:] == 0)


@pytest.mark.parametrize("name", ["steer", "hapo", "bapo"])
def test_action_level_shapes(name):
    # (B, 1), ratio 1 everywhere: every variant reduces to a (re)weighted -mean(A)
    lp = torch.log(_t([[0.5], [0.2], [0.7]])).requires_grad_()
    adv = _t([[1.0], [-1.0], [0.5]])
    ent = _t([[0.3], [1.0], [0.6]])
    loss, met = policy_loss(name, lp, lp.detach(), adv, torch.ones(3, 1), entropy=ent)
    assert loss.shape == () and met["ratio_mean"] == pytest.approx(1.0)
    if name == "bapo":  # live P = 1.5 >= N = 1 at the start bounds
        assert (met["bapo/c_low"], met["bapo/c_high"]) == (0.6, 1.2)
        assert loss.item() == pytest.approx(-(1 - 1 + 0.5) / 3)
