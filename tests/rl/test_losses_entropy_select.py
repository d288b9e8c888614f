"""Entropy-selective losses: forking_tokens (80/20), aepo, empg -- hand-computed values, gradients, metrics."""
from __future__ import annotations

import math

import pytest
import torch

from rl.losses import policy_loss
from rl.losses.entropy_select import empg_advantages, masked_quantile

D64 = torch.float64


def t(x):
    return torch.tensor(x, dtype=D64)


def lp_from_ratio(r):
    """logp with old_logp = 0 so that exp(logp - old_logp) = r; requires grad."""
    return torch.log(t(r)).requires_grad_(True)


# ---------------------------------------------------------------- masked_quantile


def test_masked_quantile_matches_torch_quantile():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, 13, generator=g, dtype=D64)
    m = torch.rand(7, 13, generator=g) > 0.3
    for q in (0.0, 0.1, 0.2, 0.5, 0.8, 0.95, 1.0):
        assert torch.allclose(masked_quantile(x, m, q), torch.quantile(x[m], q), rtol=0, atol=1e-12)


def test_masked_quantile_hand_value_and_empty():
    # valid values 0.1 0.3 0.5 0.7 0.9 ; q = 0.6 -> p = 0.6 * 4 = 2.4 -> 0.5 + 0.4 * (0.7 - 0.5) = 0.58
    x = t([[0.1, 0.9, 0.5], [0.3, 0.7, 100.0]])
    m = t([[1, 1, 1], [1, 1, 0]])
    assert masked_quantile(x, m, 0.6).item() == pytest.approx(0.58, abs=1e-12)
    assert math.isnan(masked_quantile(x, torch.zeros_like(m), 0.5).item())
    with pytest.raises(ValueError, match="quantile level"):
        masked_quantile(x, m, 1.5)


# ---------------------------------------------------------------- forking_tokens


def _forking_case():
    h = t([[0.1, 0.9, 0.5], [0.3, 0.7, 5.0]])  # the padded 5.0 must be ignored
    m = t([[1, 1, 1], [1, 1, 0]])
    r = [[1.0, 1.1, 1.3], [0.7, 0.5, 1.0]]
    adv = t([[1.0, 1.0, 1.0], [-2.0, -2.0, -2.0]])
    return h, m, r, adv


def test_forking_tokens_hand_values_gradient_and_metrics():
    h, m, r, adv = _forking_case()
    logp = lp_from_ratio(r)
    loss, met = policy_loss("forking_tokens", logp, torch.zeros_like(logp), adv, m, entropy=h, forking_ratio=0.4)
    # threshold = 0.58 (see the quantile test) -> kept: H = 0.9 (r 1.1, A +1) and H = 0.7 (r 0.5, A -2)
    # (0,1): max(-1.1, -1.1) = -1.1 ; (1,1): max(2*0.5, 2*clamp(0.5, .8, 1.2)) = 1.6, dual clip min(2*3, 1.6) = 1.6
    # token-mean over the 5 valid tokens: (-1.1 + 1.6) / 5 = 0.1
    assert loss.item() == pytest.approx(0.1, abs=1e-12)
    assert met["forking_tokens/threshold"] == pytest.approx(0.58, abs=1e-12)
    assert met["forking_tokens/frac_kept"] == pytest.approx(2 / 5)
    loss.backward()
    expected = t([[0.0, -1.1 / 5, 0.0], [0.0, 0.0, 0.0]])  # d(-A r)/dlogp = -A r; the clipped (1,1) has 0
    assert torch.allclose(logp.grad, expected, atol=1e-12)
    # clip fractions are over all valid tokens: (0,2) r=1.3>1.2 with A>0 -> high; (1,0) 0.7<0.8, (1,1) 0.5 -> low
    assert met["clipfrac_high"] == pytest.approx(1 / 5)
    assert met["clipfrac_low"] == pytest.approx(2 / 5)


def test_forking_ratio_one_equals_vanilla_and_needs_entropy():
    h, m, r, adv = _forking_case()
    logp = lp_from_ratio(r)
    old = torch.zeros_like(logp)
    a, _ = policy_loss("forking_tokens", logp, old, adv, m, entropy=h, forking_ratio=1.0)
    b, _ = policy_loss("vanilla", logp, old, adv, m)
    assert a.item() == pytest.approx(b.item(), abs=1e-12)
    with pytest.raises(ValueError, match="needs entropy"):
        policy_loss("forking_tokens", logp, old, adv, m)
    with pytest.raises(ValueError, match="forking_ratio"):
        policy_loss("forking_tokens", logp, old, adv, m, entropy=h, forking_ratio=0.0)


def test_forking_trl_mask_semantics_ties_kept():
    # TRL get_high_entropy_mask: H >= quantile(valid H, 1 - rho). With ties at the threshold all tied tokens stay.
    h = t([[1.0, 2.0, 2.0, 2.0]])
    m = torch.ones_like(h)
    logp = torch.zeros_like(h, requires_grad=True)
    # rho 0.5 -> q 0.5 of [1,2,2,2] = 2.0 -> the three 2.0 tokens are kept
    _, met = policy_loss("forking_tokens", logp, torch.zeros_like(h), torch.ones_like(h), m, entropy=h,
                         forking_ratio=0.5)
    assert met["forking_tokens/frac_kept"] == pytest.approx(0.75)


def test_forking_padding_invariance_and_action_level():
    h, m, r, adv = _forking_case()
    logp = lp_from_ratio(r)
    base, bm = policy_loss("forking_tokens", logp, torch.zeros_like(logp), adv, m, entropy=h, forking_ratio=0.4)
    # add a padded column with extreme entropy/ratio/advantage
    pad = lambda x, v: torch.cat([x.detach(), torch.full((2, 1), v, dtype=D64)], dim=1)
    logp2 = pad(logp, 9.0).requires_grad_(True)
    loss2, m2 = policy_loss("forking_tokens", logp2, pad(torch.zeros_like(logp), 0.0), pad(adv, 50.0),
                            pad(m, 0.0), entropy=pad(h, 99.0), forking_ratio=0.4)
    assert loss2.item() == pytest.approx(base.item(), abs=1e-12)
    assert m2 == pytest.approx(bm)
    # (B, 1): four actions, H = 0.1 0.2 0.3 0.4, rho 0.5 -> q 0.5 = 0.25 -> keep the last two
    h1 = t([[0.1], [0.2], [0.3], [0.4]])
    a1 = t([[1.0], [1.0], [-1.0], [2.0]])
    lp1 = torch.zeros(4, 1, dtype=D64, requires_grad=True)
    loss1, met1 = policy_loss("forking_tokens", lp1, torch.zeros(4, 1, dtype=D64), a1, torch.ones(4, 1),
                              entropy=h1, forking_ratio=0.5)
    assert loss1.item() == pytest.approx((1.0 - 2.0) / 4)  # r = 1: -A for kept rows, over 4 rows
    assert met1["forking_tokens/threshold"] == pytest.approx(0.25)


# ---------------------------------------------------------------- aepo


def test_aepo_stop_gradient_by_hand():
    # one sequence of 4 tokens, alpha = 0 to isolate the clipping change; H >= 1.0 is "high entropy"
    r = [[1.5, 1.5, 1.1, 0.9]]
    adv = t([[1.0, 2.0, 1.0, -1.0]])
    h = t([[0.1, 2.0, 1.5, 0.2]])
    m = torch.ones_like(adv)
    logp = lp_from_ratio(r)
    loss, met = policy_loss("aepo", logp, torch.zeros_like(logp), adv, m, entropy=h,
                            aepo_entropy_threshold=1.0, aepo_adv_alpha=0.0)
    # values: tok0 low-H clipped -1*1.2; tok1 high-H clipped -2*1.2 (value unchanged); tok2 -1*1.1; tok3 -(-1)*0.9
    assert loss.item() == pytest.approx((-1.2 - 2.4 - 1.1 + 0.9) / 4, abs=1e-12)
    loss.backward()
    # d/dlogp: tok0 clipped low-entropy -> 0 ; tok1 -A*(1+eps_high)/n = -2*1.2/4 ; tok2 -A r / n ; tok3 +0.9/4
    expected = t([[0.0, -2 * 1.2 / 4, -1.1 / 4, 0.9 / 4]])
    assert torch.allclose(logp.grad, expected, atol=1e-12)
    assert met["aepo/n_rescaled"] == 1.0
    assert met["aepo/frac_high_entropy"] == pytest.approx(0.5)
    # vanilla gives zero gradient on the clipped high-entropy token
    lp_v = lp_from_ratio(r)
    policy_loss("vanilla", lp_v, torch.zeros_like(lp_v), adv, m)[0].backward()
    assert lp_v.grad[0, 1].item() == 0.0


def test_aepo_both_sides_and_quantile_selection():
    r = [[0.5, 0.5, 1.0, 1.0]]
    adv = t([[-1.0, -1.0, 1.0, 1.0]])
    h = t([[3.0, 0.1, 0.2, 0.3]])  # quantile 0.8 of [0.1,0.2,0.3,3.0]: p=2.4 -> 0.3+0.4*2.7 = 1.38 -> only tok0
    m = torch.ones_like(adv)
    logp = lp_from_ratio(r)
    loss, met = policy_loss("aepo", logp, torch.zeros_like(logp), adv, m, entropy=h, aepo_adv_alpha=0.0,
                            aepo_both_sides=True)
    assert met["aepo/threshold"] == pytest.approx(1.38, abs=1e-12)
    # values: tok0,1: -A*0.8 = 0.8 each ; tok2,3: -1
    assert loss.item() == pytest.approx((0.8 + 0.8 - 1 - 1) / 4, abs=1e-12)
    loss.backward()
    # tok0 (high H, clipped low) keeps -A*(1-eps_low)/n = 0.8/4 ; tok1 low H clipped -> 0 ; tok2,3 -A r/n
    assert torch.allclose(logp.grad, t([[0.8 / 4, 0.0, -0.25, -0.25]]), atol=1e-12)
    assert met["aepo/n_rescaled"] == 1.0


def test_aepo_entropy_aware_advantage_by_hand():
    h = t([[0.0, 1.0, 2.0, 3.0]])
    adv = t([[1.0, -1.0, 2.0, 1.0]])
    m = torch.ones_like(h)
    logp = torch.zeros_like(h, requires_grad=True)  # r = 1: loss_tok = -A'
    # mean H 1.5, population std sqrt((2.25 + .25 + .25 + 2.25) / 4) = sqrt(1.25)
    std = math.sqrt(1.25) + 1e-6
    z = [(x - 1.5) / std for x in (0.0, 1.0, 2.0, 3.0)]
    f = [1 + 0.5 * zi for zi in z]  # 0.3292, 0.7764, 1.2236, 1.6708
    loss, met = policy_loss("aepo", logp, torch.zeros_like(h), adv, m, entropy=h, aepo_adv_alpha=0.5)
    want = -(1.0 * f[0] - 1.0 * f[1] + 2.0 * f[2] + 1.0 * f[3]) / 4
    assert loss.item() == pytest.approx(want, abs=1e-9)
    assert met["aepo/adv_scale_mean"] == pytest.approx(1.0, abs=1e-9)
    # alpha = 1 -> 1 + z0 = -0.342 is clamped at 0 (the advantage never flips sign)
    loss1, _ = policy_loss("aepo", logp, torch.zeros_like(h), adv, m, entropy=h, aepo_adv_alpha=1.0)
    f1 = [max(0.0, 1 + zi) for zi in z]
    assert f1[0] == 0.0
    assert loss1.item() == pytest.approx(-(f1[0] - f1[1] + 2 * f1[2] + f1[3]) / 4, abs=1e-9)
    # root entropy per sequence shifts dH; a constant root leaves z unchanged
    loss2, _ = policy_loss("aepo", logp, torch.zeros_like(h), adv, m, entropy=h, aepo_adv_alpha=0.5,
                           aepo_root_entropy=t([0.7]))
    assert loss2.item() == pytest.approx(want, abs=1e-9)


# ---------------------------------------------------------------- empg


def test_empg_advantages_by_hand():
    h = t([[0.0, 1.0, 2.0]])
    adv = t([[1.0, -1.0, 1.0]])
    m = torch.ones_like(h)
    # Hn = [0, .5, 1]; w = exp(-Hn); g = w / mean(w)
    w = [1.0, math.exp(-0.5), math.exp(-1.0)]
    g = [x / (sum(w) / 3) for x in w]  # 1.5194, 0.9216, 0.5590
    a, diag = empg_advantages(adv, h, m, normalize=False)
    assert torch.allclose(a, t([[g[0], -g[1], g[2]]]), atol=1e-7)
    assert diag["scale_mean"].item() == pytest.approx(1.0)
    # confident correct amplified (g0 > 1), uncertain attenuated (g2 < 1)
    assert g[0] > 1 > g[2]
    # future clarity bonus zeta=0.1: pos0 sees Hn 0.5, pos1 sees Hn 1, last position none
    bonus = [0.1 * math.exp(-0.5), 0.1 * math.exp(-1.0), 0.0]
    a_b, diag_b = empg_advantages(adv, h, m, zeta=0.1, normalize=False)
    want = [g[0] + bonus[0], -g[1] + bonus[1], g[2]]
    assert torch.allclose(a_b, t([want]), atol=1e-7)
    assert diag_b["bonus_mean"].item() == pytest.approx(sum(bonus) / 3, abs=1e-9)
    # normalisation: (x - mean) / population std
    a_n, _ = empg_advantages(adv, h, m, zeta=0.1, normalize=True)
    mu = sum(want) / 3
    sd = math.sqrt(sum((x - mu) ** 2 for x in want) / 3)
    assert torch.allclose(a_n, t([[(x - mu) / (sd + 1e-8) for x in want]]), atol=1e-7)


def test_empg_loss_hand_padding_and_metrics():
    h = t([[0.0, 1.0, 2.0, 7.0]])
    adv = t([[1.0, -1.0, 1.0, 9.0]])
    m = t([[1, 1, 1, 0]])
    logp = torch.zeros_like(h, requires_grad=True)
    loss, met = policy_loss("empg", logp, torch.zeros_like(h), adv, m, entropy=h, empg_normalize=False)
    w = [1.0, math.exp(-0.5), math.exp(-1.0)]
    g = [x / (sum(w) / 3) for x in w]
    assert loss.item() == pytest.approx(-(g[0] - g[1] + g[2]) / 3, abs=1e-7)  # r = 1 -> -A_mod, mean of 3
    assert met["empg/scale_mean"] == pytest.approx(1.0)
    loss.backward()
    assert torch.allclose(logp.grad, t([[-g[0] / 3, g[1] / 3, -g[2] / 3, 0.0]]), atol=1e-7)


# ---------------------------------------------------------------- gradcheck (float64, selection fixed)


def _gc_inputs(bt=(3, 4)):
    g = torch.Generator().manual_seed(7)
    d = t([[-0.6, -0.05, 0.1, 0.4], [0.3, -0.4, 0.05, -0.1], [0.5, 0.02, -0.3, 0.15]])[: bt[0], : bt[1]]
    old = torch.randn(*bt, generator=g, dtype=D64)
    logp = (old + d).requires_grad_(True)
    adv = t([[1.0], [-1.5], [0.7]])[: bt[0]].expand(*bt).clone()
    ent = torch.rand(*bt, generator=g, dtype=D64) + torch.arange(bt[0] * bt[1], dtype=D64).reshape(bt) * 0.01
    m = torch.ones(*bt, dtype=D64)
    m[1, -1] = 0
    return logp, old, adv, m, ent


@pytest.mark.parametrize(
    "name,cfg",
    [
        ("forking_tokens", {"forking_ratio": 0.5}),
        ("aepo", {"aepo_entropy_threshold": 10.0, "aepo_both_sides": True, "aepo_adv_alpha": 0.5}),
        ("empg", {"empg_zeta": 0.1}),
    ],
)
def test_gradcheck(name, cfg):
    """On tokens AEPO rescales, the gradient is by design not the derivative of the value (r / sg(r) has value 1):
    that path is checked by hand in test_aepo_stop_gradient_by_hand; here every other path is gradchecked."""
    logp, old, adv, m, ent = _gc_inputs()
    for agg in ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"):
        fn = lambda lp, agg=agg: policy_loss(name, lp, old, adv, m, entropy=ent, agg=agg, **cfg)[0]
        assert torch.autograd.gradcheck(fn, (logp,), eps=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", ["forking_tokens", "aepo", "empg"])
def test_padding_never_changes_loss_and_action_level_runs(name):
    logp, old, adv, m, ent = _gc_inputs()
    cfg = {"empg": {"empg_zeta": 0.1}}.get(name, {})
    base, bm = policy_loss(name, logp, old, adv, m, entropy=ent, **cfg)
    pad = lambda x, v: torch.cat([x.detach(), torch.full((x.shape[0], 2), v, dtype=D64)], dim=1)
    padded, pm = policy_loss(name, pad(logp, 5.0), pad(old, -5.0), pad(adv, 40.0), pad(m, 0.0),
                             entropy=pad(ent, 1e3), **cfg)
    assert padded.item() == pytest.approx(base.item(), abs=1e-12)
    assert pm == pytest.approx(bm)
    # (B, 1) action-level tensors: a finite loss with a gradient on every valid row
    lp1 = logp[:, :1].detach().clone().requires_grad_(True)
    loss1, _ = policy_loss(name, lp1, old[:, :1], adv[:, :1], torch.ones(3, 1, dtype=D64), entropy=ent[:, :1],
                           **cfg)
    loss1.backward()
    assert torch.isfinite(loss1) and lp1.grad.shape == (3, 1)
