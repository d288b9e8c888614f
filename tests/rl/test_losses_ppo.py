"""PPO family (vanilla, gspo, geo_mean, cispo, sapo, reinforce): hand-computed values, gradients, metrics,
padding and (B, 1) shapes."""

from __future__ import annotations

import math

import pytest
import torch

from rl.losses import POLICY_LOSSES, policy_loss

F64 = torch.float64
# The shared 2x3 example: ratios chosen so that every branch of the clipped loss is hit.
R = [[1.5, 1.0, 0.5], [0.5, 0.7, 4.0]]
OLD = [[-1.0, -1.0, -1.0], [-2.0, -2.0, -2.0]]
A_TOK = [[1.0, -1.0, 2.0], [-1.0, 0.5, -2.0]]


def _lp(ratios=R, old=OLD):
    old_t = torch.tensor(old, dtype=F64)
    lp = (old_t + torch.log(torch.tensor(ratios, dtype=F64))).requires_grad_()
    return lp, old_t


def _grad(loss, lp):
    (g,) = torch.autograd.grad(loss, lp)
    return g


def _close(t, nested, rel=1e-9):
    return torch.allclose(t, torch.tensor(nested, dtype=t.dtype), rtol=rel, atol=1e-12)


def test_vanilla_by_hand():
    lp, old = _lp()
    adv = torch.tensor(A_TOK, dtype=F64)
    mask = torch.ones(2, 3)
    loss, met = policy_loss("vanilla", lp, old, adv, mask)  # eps 0.2/0.2, c = 3
    # per token max(-A r, -A clamp(r, .8, 1.2)), and min(-A c, .) where A < 0:
    #  (0,0) A=1,  r=1.5: max(-1.5, -1.2) = -1.2 (clipped high)
    #  (0,1) A=-1, r=1:   1
    #  (0,2) A=2,  r=0.5: max(-1.0, -1.6) = -1.0
    #  (1,0) A=-1, r=0.5: max(0.5, 0.8) = 0.8 (clipped low)
    #  (1,1) A=.5, r=0.7: max(-0.35, -0.4) = -0.35
    #  (1,2) A=-2, r=4:   max(8, 2.4) = 8 -> dual clip min(2*3, 8) = 6
    assert loss.item() == pytest.approx((-1.2 + 1 - 1.0 + 0.8 - 0.35 + 6) / 6, rel=1e-12)
    # gradient -A r / N on unclipped tokens, 0 on clipped ones
    expect = [[0.0, 1.0, -1.0], [0.0, -0.35, 0.0]]
    assert _close(_grad(loss, lp), [[v / 6 for v in row] for row in expect])
    assert met["clipfrac_low"] == pytest.approx(1 / 6)
    assert met["clipfrac_high"] == pytest.approx(1 / 6)
    assert met["clipfrac_dual"] == pytest.approx(1 / 6)
    assert met["ratio_mean"] == pytest.approx(8.2 / 6)
    assert met["approx_kl"] == pytest.approx(-math.log(1.5 * 0.5 * 0.5 * 0.7 * 4.0) / 6)


def test_vanilla_clip_higher_and_no_dual_clip():
    lp, old = _lp()
    adv = torch.tensor(A_TOK, dtype=F64)
    loss, met = policy_loss("vanilla", lp, old, adv, torch.ones(2, 3), clip_high=0.6, clip_c=None)
    # (0,0): max(-1.5, -1.5) = -1.5 (no longer clipped); (1,2): 8 (no dual clip)
    assert loss.item() == pytest.approx((-1.5 + 1 - 1.0 + 0.8 - 0.35 + 8) / 6)
    assert met["clipfrac_high"] == 0.0 and "clipfrac_dual" not in met


def test_vanilla_bad_options_raise():
    lp, old = _lp()
    adv = torch.tensor(A_TOK, dtype=F64)
    with pytest.raises(ValueError, match="clip_c must be > 1"):
        policy_loss("vanilla", lp, old, adv, torch.ones(2, 3), clip_c=0.5)
    with pytest.raises(TypeError, match="did you mean 'clip_high'"):
        policy_loss("vanilla", lp, old, adv, torch.ones(2, 3), clip_hihg=0.3)


def test_gspo_by_hand():
    lp, old = _lp(ratios=[[1.5, 1.0, 0.5], [0.5, 0.5, 0.5]])
    adv = torch.tensor([[1.0] * 3, [-1.0] * 3], dtype=F64)
    loss, met = policy_loss("gspo", lp, old, adv, torch.ones(2, 3), agg="token-mean")  # agg is ignored
    r0 = (1.5 * 1.0 * 0.5) ** (1 / 3)  # geometric mean ratio 0.9086, inside [0.8, 1.2]
    r1 = 0.5  # below 0.8 with A < 0 -> clipped: -A * 0.8 = 0.8
    assert loss.item() == pytest.approx((-r0 + 0.8) / 2, rel=1e-7)  # 1e-8 in the token-mean denominator
    # token gradient: d/dlp_t of -A r_tok = -A r_seq (value of r_tok is r_seq); seq-mean-token-mean: / 3 / 2
    assert _close(_grad(loss, lp), [[-r0 / 6] * 3, [0.0] * 3], rel=1e-7)
    assert met["clipfrac_low"] == pytest.approx(3 / 6) and met["clipfrac_high"] == 0.0
    assert met["ratio_mean"] == pytest.approx((3 * r0 + 3 * r1) / 6)


def test_gspo_sequence_ratio_uses_only_valid_tokens():
    # the padded token (ratio 100) must not enter s_i: r_seq = sqrt(1.5 * 1.0)
    lp, old = _lp(ratios=[[1.5, 1.0, 100.0]], old=[[-1.0, -1.0, -1.0]])
    adv = torch.ones(1, 3, dtype=F64)
    loss, met = policy_loss("gspo", lp, old, adv, torch.tensor([[1, 1, 0]]), clip_high=0.3)
    assert loss.item() == pytest.approx(-(1.5**0.5))  # sqrt(1.5) = 1.2247 < 1.3: unclipped
    loss, met = policy_loss("gspo", lp, old, adv, torch.tensor([[1, 1, 0]]), clip_high=0.2)
    assert loss.item() == pytest.approx(-1.2)  # clipped at 1 + 0.2
    assert met["clipfrac_high"] == pytest.approx(1.0)


def test_geo_mean_by_hand():
    lp, old = _lp()
    adv = torch.tensor([[1.0] * 3, [-1.0] * 3], dtype=F64)
    loss, met = policy_loss("geo_mean", lp, old, adv, torch.ones(2, 3))
    # A > 0: d' = min(d, clamp(d, -.2, .2)); d = [ln1.5, 0, ln.5] -> [0.2, 0, ln .5]
    r0 = math.exp((0.2 + 0.0 + math.log(0.5)) / 3)
    # A < 0: d' = max(d, clamp(d)); d = [ln.5, ln.7, ln4] -> [-0.2, -0.2, ln 4]
    r1 = math.exp((-0.2 - 0.2 + math.log(4.0)) / 3)
    assert loss.item() == pytest.approx((-1 * r0 + 1 * r1) / 2, rel=1e-7)
    # gradient flows only through unclamped tokens: -A_seq r_seq / n_tok / B
    assert _close(_grad(loss, lp), [[0.0, -r0 / 6, -r0 / 6], [0.0, 0.0, r1 / 6]], rel=1e-7)
    assert met["clipfrac_high"] == pytest.approx(1 / 6)  # (0,0): d = 0.405 > 0.2
    assert met["clipfrac_low"] == pytest.approx(2 / 6)  # (1,0), (1,1): d < -0.2
    assert met["geo_mean/ratio_seq_mean"] == pytest.approx((r0 + r1) / 2)


def test_cispo_by_hand():
    lp, old = _lp()
    adv = torch.tensor(A_TOK, dtype=F64)
    loss, met = policy_loss("cispo", lp, old, adv, torch.ones(2, 3))
    w = [[1.2, 1.0, 0.8], [0.8, 0.8, 1.2]]  # clamp(r, 0.8, 1.2), no gradient
    lpv = [[OLD[i][j] + math.log(R[i][j]) for j in range(3)] for i in range(2)]
    expect = -sum(w[i][j] * A_TOK[i][j] * lpv[i][j] for i in range(2) for j in range(3)) / 6
    assert loss.item() == pytest.approx(expect, rel=1e-12)
    grad = [[-w[i][j] * A_TOK[i][j] / 6 for j in range(3)] for i in range(2)]
    assert _close(_grad(loss, lp), grad)  # every token keeps its gradient
    assert met["clipfrac_high"] == pytest.approx(1 / 6)


def _sig(x):
    return 1 / (1 + math.exp(-x))


def test_sapo_by_hand():
    lp, old = _lp()
    adv = torch.tensor([[1.0] * 3, [-1.0] * 3], dtype=F64)
    loss, met = policy_loss("sapo", lp, old, adv, torch.ones(2, 3))
    tau = [1.0, 1.05]
    a = [1.0, -1.0]
    tok = [[-a[i] * _sig(tau[i] * (R[i][j] - 1)) * 4 / tau[i] for j in range(3)] for i in range(2)]
    assert loss.item() == pytest.approx((sum(tok[0]) / 3 + sum(tok[1]) / 3) / 2, rel=1e-7)
    # d/dlp = -A * 4 sig (1 - sig) * r  (the tau cancels), / 3 / 2
    grad = [
        [
            -a[i] * 4 * _sig(tau[i] * (R[i][j] - 1)) * (1 - _sig(tau[i] * (R[i][j] - 1))) * R[i][j] / 6
            for j in range(3)
        ]
        for i in range(2)
    ]
    assert _close(_grad(loss, lp), grad, rel=1e-7)
    gates = [_sig(tau[i] * (R[i][j] - 1)) * 4 / tau[i] for i in range(2) for j in range(3)]
    assert met["sapo/gate_mean"] == pytest.approx(sum(gates) / 6)
    assert met["clipfrac_low"] == met["clipfrac_high"] == 0.0


def test_sapo_gradient_at_ratio_one_equals_policy_gradient():
    lp, old = _lp(ratios=[[1.0, 1.0]], old=[[-1.0, -2.0]])
    adv = torch.tensor([[2.0, -3.0]], dtype=F64)
    loss, _ = policy_loss("sapo", lp, old, adv, torch.ones(1, 2), agg="token-mean")
    assert _close(_grad(loss, lp), [[-2.0 / 2, 3.0 / 2]])  # -A / N, as REINFORCE


def test_reinforce_by_hand():
    lp, old = _lp()
    adv = torch.tensor(A_TOK, dtype=F64)
    loss, _ = policy_loss("reinforce", lp, old, adv, torch.ones(2, 3))
    lpv = [[OLD[i][j] + math.log(R[i][j]) for j in range(3)] for i in range(2)]
    assert loss.item() == pytest.approx(-sum(A_TOK[i][j] * lpv[i][j] for i in range(2) for j in range(3)) / 6)
    assert _close(_grad(loss, lp), [[-a / 6 for a in row] for row in A_TOK])


PPO_LOSSES = ["vanilla", "gspo", "geo_mean", "cispo", "sapo", "reinforce"]


def _random_batch(seed, b=3, t=4):
    g = torch.Generator().manual_seed(seed)
    old = -torch.rand(b, t, generator=g, dtype=F64) * 2 - 0.1
    lp = (old + 0.3 * torch.randn(b, t, generator=g, dtype=F64)).requires_grad_()
    adv = torch.randn(b, 1, generator=g, dtype=F64).expand(b, t).clone()
    adv[0, 1] = -adv[0, 1]  # token-level variety
    return lp, old, adv


@pytest.mark.parametrize("name", PPO_LOSSES)
def test_gradcheck(name):
    lp, old, adv = _random_batch(1)
    if name == "gspo":  # the token gradient equals d(value) only for sequence-level advantages
        adv[0, 1] = adv[0, 0]
    if name == "cispo":  # sg(clamp(r)) is locally constant only where r is clipped: push every r outside
        sign = torch.where(torch.arange(12).reshape(3, 4) % 2 == 0, 1.0, -1.0).to(F64)
        lp = (old + sign * 0.5).requires_grad_()
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]])
    assert torch.autograd.gradcheck(lambda x: policy_loss(name, x, old, adv, mask)[0], (lp,))


@pytest.mark.parametrize("name", PPO_LOSSES)
def test_padding_does_not_change_loss_or_grad(name):
    lp, old, adv = _random_batch(2)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]])
    # extend with 3 padded columns holding garbage, and an all-padding row
    pad_lp = torch.cat([lp.detach(), torch.full((3, 3), 5.0, dtype=F64)], 1)
    pad_lp = torch.cat([pad_lp, torch.full((1, 7), -50.0, dtype=F64)]).requires_grad_()
    pad_old = torch.cat(
        [torch.cat([old, torch.full((3, 3), -40.0, dtype=F64)], 1), torch.zeros(1, 7, dtype=F64)]
    )
    pad_adv = torch.cat(
        [torch.cat([adv, torch.full((3, 3), 9.0, dtype=F64)], 1), torch.full((1, 7), 9.0, dtype=F64)]
    )
    pad_mask = torch.cat(
        [torch.cat([mask, torch.zeros(3, 3, dtype=mask.dtype)], 1), torch.zeros(1, 7, dtype=mask.dtype)]
    )
    kwargs = {"agg": "seq-mean-token-mean"} if name not in ("gspo", "geo_mean", "sapo") else {}
    base, met = policy_loss(name, lp, old, adv, mask, **kwargs)
    g_base = _grad(base, lp)
    padded, met_p = policy_loss(name, pad_lp, pad_old, pad_adv, pad_mask, **kwargs)
    assert padded.item() == pytest.approx(base.item(), rel=1e-12)
    g = _grad(padded, pad_lp)
    assert torch.allclose(g[:3, :4], g_base) and torch.all(g[:3, 4:] == 0) and torch.all(g[3] == 0)
    assert met_p == pytest.approx(met)


@pytest.mark.parametrize("name", PPO_LOSSES)
def test_action_level_shapes(name):
    # (B, 1): one action per sample (bandit / router policies)
    old = torch.log(torch.tensor([[0.5], [0.25]], dtype=F64))
    lp = torch.log(torch.tensor([[0.55], [0.2]], dtype=F64)).requires_grad_()
    adv = torch.tensor([[1.0], [-1.0]], dtype=F64)
    loss, met = policy_loss(name, lp, old, adv, torch.ones(2, 1))
    assert loss.shape == () and set(met) >= {"clipfrac_low", "clipfrac_high", "approx_kl", "ratio_mean"}
    r = [1.1, 0.8]  # inside the PPO clip range: the ratio losses reduce to -mean(A f(r))
    expected = {
        "vanilla": (-1.1 + 0.8) / 2,
        "gspo": (-1.1 + 0.8) / 2,
        "geo_mean": (-1.1 + math.exp(-0.2)) / 2,  # ln 0.8 < -0.2: clipped in log space
        "cispo": (-1.1 * math.log(0.55) + 0.8 * math.log(0.2)) / 2,
        "sapo": (-_sig(r[0] - 1) * 4 + _sig(1.05 * (r[1] - 1)) * 4 / 1.05) / 2,
        "reinforce": (-math.log(0.55) + math.log(0.2)) / 2,
    }[name]
    assert loss.item() == pytest.approx(expected, rel=1e-7)


def test_registry_has_the_ppo_family():
    assert set(PPO_LOSSES) <= set(POLICY_LOSSES)
