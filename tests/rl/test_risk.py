"""rl.risk: CVaR/VaR against hand values and the Rockafellar-Uryasev form; RiskPO advantages by hand."""
from __future__ import annotations

import math

import pytest
import torch

from rl.risk import RiskPOState, cvar, riskpo, riskpo_advantage, var

D64 = torch.float64


def t(x):
    return torch.tensor(x, dtype=D64)


def ru_objective(x: torch.Tensor, c: torch.Tensor, alpha: float) -> torch.Tensor:
    """c - (1 / (alpha n)) sum_i (c - x_i)^+ for each c (written out independently of rl.risk)."""
    n = x.numel()
    return c - torch.relu(c.unsqueeze(-1) - x).sum(-1) / (alpha * n)


def test_cvar_hand_value_and_gradient():
    # n = 10, alpha = 0.25 -> a = 2.5: the two worst fully and half of the third
    x = t([5.0, -3.0, 2.0, 7.0, -1.0, 0.0, 4.0, 1.0, 6.0, 3.0]).requires_grad_(True)
    c = cvar(x, 0.25)
    assert c.item() == pytest.approx((-3.0 + -1.0 + 0.5 * 0.0) / 2.5)  # -1.6
    c.backward()
    want = torch.zeros(10, dtype=D64)
    want[1], want[4], want[5] = 1 / 2.5, 1 / 2.5, 0.5 / 2.5
    assert torch.allclose(x.grad, want)
    # alpha = 1 is the mean; an integral alpha n has no fractional sample
    assert cvar(x.detach(), 1.0).item() == pytest.approx(2.4)
    assert cvar(x.detach(), 0.3).item() == pytest.approx((-3 - 1 + 0) / 3)
    assert var(x.detach(), 0.25).item() == 0.0  # ceil(2.5) = 3rd smallest
    assert var(x.detach(), 0.3).item() == 0.0  # ceil(3) = 3rd (0.3 * 10 = 3.0000000000000004 rounded)


def test_cvar_equals_rockafellar_uryasev_maximum():
    g = torch.Generator().manual_seed(0)
    for n, alpha in ((10, 0.25), (7, 0.1), (50, 0.05), (13, 0.5), (9, 1.0)):
        x = torch.randn(n, generator=g, dtype=D64)
        c = cvar(x, alpha)
        # the maximiser is VaR: the objective there equals CVaR exactly
        assert ru_objective(x, var(x, alpha).reshape(1), alpha).item() == pytest.approx(c.item(), abs=1e-12)
        # and no point of a fine grid does better
        grid = torch.linspace(float(x.min()) - 1, float(x.max()) + 1, 20001, dtype=D64)
        best = ru_objective(x, grid, alpha).max().item()
        assert best <= c.item() + 1e-12
        assert best == pytest.approx(c.item(), abs=1e-3)


def test_cvar_batched_dim_and_errors():
    x = t([[3.0, 1.0, 2.0, 4.0], [0.0, -4.0, 8.0, 2.0]])
    # alpha 0.5, n 4 -> two worst
    assert torch.allclose(cvar(x, 0.5), t([1.5, -2.0]))
    assert torch.allclose(cvar(x.T, 0.5, dim=0), t([1.5, -2.0]))
    assert torch.allclose(var(x, 0.5), t([2.0, 0.0]))
    with pytest.raises(ValueError, match="alpha"):
        cvar(x, 0.0)


def _riskpo_case():
    # bundle of 2 questions x 5 responses; papers j: S = q1[j] + q2[j]
    q1 = [1.0, 0.0, 1.0, 0.0, 1.0]
    q2 = [1.0, 1.0, 0.0, 0.0, 0.0]
    scores = t(q1 + q2)
    qids = [0] * 5 + [1] * 5
    return scores, qids  # S = [2, 1, 1, 0, 1]


def test_riskpo_batch_mode_by_hand():
    scores, qids = _riskpo_case()
    res = riskpo(scores, qids, bundle_size=2, mode="batch", credit="uniform")
    assert torch.allclose(res.paper_scores, t([2.0, 1.0, 1.0, 0.0, 1.0]))
    # sorted S = 0 1 1 1 2: q_0.2 at p=0.8 -> 0.8 ; q_0.9 at p=3.6 -> 1 + 0.6 = 1.6
    qa, qb, eps = 0.8, 1.6, 1e-6
    sd = math.sqrt(((2 - 1) ** 2 + 0 + 0 + (0 - 1) ** 2 + 0) / 4)  # unbiased std of S = sqrt(0.5)

    def a_of(s):
        rvar = (max(s - qa, 0) - max(s - qb, 0) + qa - qb) / (0.9 - 0.2 + eps)
        cv = -max(qa - s, 0) / (0.2 + eps)
        return (1.5 * cv + rvar) / 2.5 / (sd + eps)

    # S=2 -> 0 ; S=1 -> (1-1.6)/0.7/2.5/sd ; S=0 -> (1.5*(-4) + (-0.8/0.7)) / 2.5 / sd
    assert a_of(2.0) == pytest.approx(0.0, abs=1e-9)
    paper_a = [a_of(s) for s in (2.0, 1.0, 1.0, 0.0, 1.0)]
    assert torch.allclose(res.advantages, t(paper_a + paper_a), atol=1e-12)
    # "std" credit divides by each question's unbiased std: both are sqrt(1.2 / 4)
    res_std = riskpo(scores, qids, bundle_size=2, mode="batch", credit="std")
    sq = math.sqrt(0.3)
    assert torch.allclose(res_std.advantages, t(paper_a + paper_a) / (sq + eps), atol=1e-12)
    # without mixing: A_RVaR only
    res_r = riskpo(scores, qids, bundle_size=2, mode="batch", credit="uniform", mix=False)
    assert res_r.advantages[3].item() == pytest.approx((qa - qb) / (0.7 + eps) / (sd + eps))


def test_riskpo_track_mix_state_and_bundling():
    scores, qids = _riskpo_case()
    st = RiskPOState(0.5, 1.5)
    tr = riskpo(scores, qids, bundle_size=2, mode="track", state=st, credit="uniform")
    sd = math.sqrt(0.5)
    # S=1 with q_a=0.5, q_b=1.5: RVaR (1 - 1.5)/0.7 ; CVaR 0 -> /2.5 /sd
    assert tr.advantages[1].item() == pytest.approx((1 - 1.5) / (0.7 + 1e-6) / 2.5 / (sd + 1e-6))
    # pinball SGD: 1/5 papers <= 0.5, 4/5 <= 1.5 -> q_low 0.5 + 0.1 (0.2 - 0.2), q_high 1.5 + 0.1 (0.9 - 0.8)
    assert tr.state.q_low == pytest.approx(0.5) and tr.state.q_high == pytest.approx(1.51)
    mx = riskpo(scores, qids, bundle_size=2, mode="mix", state=st, credit="uniform")
    qa, qb = (0.5 + 0.8) / 2, (1.5 + 1.6) / 2
    assert mx.advantages[1].item() == pytest.approx((1 - qb) / (0.7 + 1e-6) / 2.5 / (sd + 1e-6))
    assert qa < 1  # S=1 above q_a: no CVaR part
    # no state yet: track mode falls back to batch quantiles and returns the batch quantiles as the state
    first = riskpo(scores, qids, bundle_size=2, mode="track")
    assert first.state == pytest.approx((0.8, 1.6))
    # bundle_size 1: each question its own bundle, papers = single responses
    single = riskpo(scores, qids, bundle_size=1, mode="batch", credit="uniform")
    assert single.paper_scores.numel() == 10
    # an extra response of question 0 belongs to no paper -> advantage 0
    extra = riskpo(torch.cat([scores, t([1.0])]), qids + [0], bundle_size=2, mode="batch")
    assert extra.advantages[-1].item() == 0.0
    with pytest.raises(ValueError, match="question_ids"):
        riskpo(scores, qids[:-1])


def test_riskpo_advantage_is_the_advantage_tensor_of_riskpo():
    scores = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    qids = [0, 0, 1, 1, 2, 2, 3, 3]
    adv = riskpo_advantage(scores, qids, bundle_size=2, mode="batch")
    assert isinstance(adv, torch.Tensor) and adv.shape == (8,)
    torch.testing.assert_close(adv, riskpo(scores, qids, bundle_size=2, mode="batch").advantages, rtol=0, atol=0)
