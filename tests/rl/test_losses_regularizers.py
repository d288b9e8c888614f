"""Regularised losses: lp_reg, siren, epo -- hand-computed values, gradients, metrics, masks, shapes."""
from __future__ import annotations

import math

import pytest
import torch

from rl.entropy import entropy_from_logits
from rl.losses import policy_loss
from rl.losses.regularizers import minp_proxy_logp, row_quantile, top_p_entropy

D64 = torch.float64


def t(x):
    return torch.tensor(x, dtype=D64)


def logits_of(probs):
    """Logits whose softmax is ``probs`` (last axis)."""
    return torch.log(t(probs))


def ent(ps):
    return -sum(p * math.log(p) for p in ps)


# ---------------------------------------------------------------- lp_reg


def test_minp_proxy_by_hand():
    # p = [0.6, 0.39, 0.01]; kappa 0.02 -> threshold 0.012 drops the third; renormalised over 0.99
    z = logits_of([[[0.6, 0.39, 0.01], [0.6, 0.39, 0.01]]])  # (1, 2, 3)
    tokens = torch.tensor([[1, 2]])
    lp = minp_proxy_logp(z, tokens, kappa=0.02)
    assert lp[0, 0].item() == pytest.approx(math.log(0.39 / 0.99), abs=1e-12)
    assert lp[0, 1].item() < -9000  # filtered token: logit -1e4
    # kappa 0 keeps everything: the proxy is the policy itself
    assert minp_proxy_logp(z, tokens, kappa=0.0)[0, 1].item() == pytest.approx(math.log(0.01), abs=1e-12)


def _lp_case():
    logp = t([[-3.0, -2.0, -0.5, -0.1]]).requires_grad_(True)
    old = logp.detach() - t([[math.log(0.5), 0.0, 0.0, 0.0]])  # r = 0.5 on token 0, 1 elsewhere
    adv = t([[-1.0, -1.0, -1.0, -1.0]])
    proxy = t([[-2.5, -2.5, -0.2, -0.05]])
    return logp, old, adv, proxy


def test_lp_reg_hand_values_gradient_metrics():
    logp, old, adv, proxy = _lp_case()
    m = torch.ones_like(adv)
    loss, met = policy_loss("lp_reg", logp, old, adv, m, lp_reg_proxy_logp=proxy, lp_reg_neg_ratio=0.5)
    # k = int(4 * 0.5) = 2 lowest logp: tokens 0 (-3.0) and 1 (-2.0); logp < proxy only for token 0 (-3 < -2.5)
    # token 0: unclipped -A r = 0.5 plus k3 with x = -2.5 - (-3) = 0.5: e^0.5 - 0.5 - 1
    k3 = math.exp(0.5) - 1.5  # 0.148721
    assert loss.item() == pytest.approx((0.5 + k3 + 1 + 1 + 1) / 4, abs=1e-12)
    assert met["lp_reg/n_candidates"] == 2
    assert met["lp_reg/n_regularized"] == 1
    assert met["lp_reg/kl_mean"] == pytest.approx(k3, abs=1e-12)
    loss.backward()
    # d/dlogp token 0: -A r + (1 - e^x) = 0.5 + 1 - e^0.5 ; others -A r = 1 ; all / 4
    assert torch.allclose(logp.grad, t([[(0.5 + 1 - math.exp(0.5)) / 4, 0.25, 0.25, 0.25]]), atol=1e-12)
    # without the regulariser token 0 is clipped (r = 0.5 < 0.8, A < 0): value 0.8, zero gradient
    lp2 = logp.detach().clone().requires_grad_(True)
    loss2, _ = policy_loss("lp_reg", lp2, old, adv, m, lp_reg_proxy_logp=proxy, lp_reg_neg_ratio=0.0)
    assert loss2.item() == pytest.approx((0.8 + 3) / 4, abs=1e-12)


def test_lp_reg_positive_side_padding_and_shapes():
    logp, old, adv, proxy = _lp_case()
    adv = t([[1.0, 1.0, -1.0, -1.0]])
    m = torch.ones_like(adv)
    _, met = policy_loss("lp_reg", logp, old, adv, m, lp_reg_proxy_logp=proxy, lp_reg_neg_ratio=0.0,
                         lp_reg_pos_ratio=0.5)
    # positive tokens 0 and 1, k = 1 lowest: token 0 (logp -3 < proxy -2.5) -> regularised
    assert met["lp_reg/n_regularized"] == 1
    # padding: a padded token with very low logp and A < 0 must not be selected nor counted
    adv_n = t([[-1.0, -1.0, -1.0, -1.0]])
    base, bm = policy_loss("lp_reg", logp, old, adv_n, m, lp_reg_proxy_logp=proxy, lp_reg_neg_ratio=0.5)
    cat = lambda x, v: torch.cat([x.detach(), t([[v]])], dim=1)
    padded, pm = policy_loss("lp_reg", cat(logp, -50.0), cat(old, 0.0), cat(adv_n, -5.0), cat(m, 0.0),
                             lp_reg_proxy_logp=cat(proxy, -1.0), lp_reg_neg_ratio=0.5)
    assert padded.item() == pytest.approx(base.item(), abs=1e-12)
    assert pm == pytest.approx(bm)
    # (B, 1): four single actions
    lp1 = t([[-3.0], [-2.0], [-0.5], [-0.1]]).requires_grad_(True)
    loss1, m1 = policy_loss("lp_reg", lp1, lp1.detach(), -torch.ones(4, 1, dtype=D64), torch.ones(4, 1),
                            lp_reg_proxy_logp=t([[-2.5], [-2.5], [-0.2], [-0.05]]), lp_reg_neg_ratio=0.25)
    assert m1["lp_reg/n_regularized"] == 1
    assert loss1.item() == pytest.approx((1 + math.exp(0.5) - 1.5 + 3) / 4, abs=1e-12)


def test_lp_reg_from_logits_and_errors():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 5, 7, generator=g, dtype=D64, requires_grad=True)
    tokens = torch.randint(0, 7, (2, 5), generator=g)
    logp = torch.log_softmax(z, -1).gather(-1, tokens[..., None]).squeeze(-1)
    adv = -torch.ones(2, 5, dtype=D64)
    m = torch.ones(2, 5)
    a, _ = policy_loss("lp_reg", logp, logp.detach(), adv, m, logits=z, tokens=tokens, lp_reg_neg_ratio=0.3)
    b, _ = policy_loss("lp_reg", logp, logp.detach(), adv, m, lp_reg_neg_ratio=0.3,
                       lp_reg_proxy_logp=minp_proxy_logp(z, tokens, kappa=0.02))
    assert a.item() == pytest.approx(b.item(), abs=1e-12)
    with pytest.raises(ValueError, match="needs the proxy"):
        policy_loss("lp_reg", logp, logp.detach(), adv, m, logits=z)
    with pytest.raises(ValueError, match="lp_reg_neg_ratio"):
        policy_loss("lp_reg", logp, logp.detach(), adv, m, logits=z, tokens=tokens, lp_reg_neg_ratio=2.0)


# ---------------------------------------------------------------- siren


def test_top_p_entropy_by_hand():
    z = logits_of([[0.5, 0.35, 0.15], [0.9, 0.05, 0.05], [0.4, 0.35, 0.25]])
    h = top_p_entropy(z, top_p=0.8)
    # row 0: nucleus {0.5, 0.35} (0.5 < 0.8 before the 2nd token) ; row 1: {0.9} ; row 2: all three
    want = [ent([0.5 / 0.85, 0.35 / 0.85]), 0.0, ent([0.4, 0.35, 0.25])]
    assert torch.allclose(h, t(want), atol=1e-12)
    # the reference's exclusive cut (cum < p): row 0 keeps {0.5}, row 2 keeps {0.4, 0.35}
    h_ref = top_p_entropy(z, top_p=0.8, include_boundary=False)
    assert torch.allclose(h_ref, t([0.0, 0.0, ent([0.4 / 0.75, 0.35 / 0.75])]), atol=1e-12)
    # top_k = 1 keeps only the mode; top_p = 1 is the full entropy (cross-check with rl.entropy)
    assert torch.allclose(top_p_entropy(z, top_p=0.8, top_k=1), torch.zeros(3, dtype=D64))
    g = torch.Generator().manual_seed(1)
    zz = torch.randn(4, 6, 9, generator=g, dtype=D64)
    assert torch.allclose(top_p_entropy(zz, top_p=1.0), entropy_from_logits(zz), atol=1e-10)


def test_row_quantile_matches_nanquantile():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(5, 9, generator=g, dtype=D64)
    m = torch.rand(5, 9, generator=g) > 0.3
    m[0] = False
    for q in (0.0, 0.5, 0.8, 1.0):
        want = torch.nanquantile(torch.where(m, x, torch.full_like(x, float("nan"))), q, dim=-1, keepdim=True)
        got = row_quantile(x, m, q)
        assert torch.allclose(got, want, equal_nan=True, atol=1e-12)


def _siren_case():
    g = torch.Generator().manual_seed(3)
    z = torch.randn(2, 5, 6, generator=g, dtype=D64, requires_grad=True)
    tokens = torch.randint(0, 6, (2, 5), generator=g)
    logp = torch.log_softmax(z, -1).gather(-1, tokens[..., None]).squeeze(-1)
    old = logp.detach() + 0.05 * torch.randn(2, 5, generator=g, dtype=D64)
    adv = t([[1.0], [-0.5]]).expand(2, 5)
    return z, logp, old, adv


def test_siren_penalty_by_hand_and_anchor():
    z, logp, old, adv = _siren_case()
    m = torch.ones(2, 5)
    hp = top_p_entropy(z.detach(), top_p=1.0)  # top_p = 1: H_p = full entropy
    # per sequence, quantile 0.8 of 5 values: p = 3.2 -> strictly above it only the maximum -> E = mean of maxima
    e_hand = (hp[0].max() + hp[1].max()).item() / 2
    pg, _ = policy_loss("vanilla", logp, old, adv, m)
    loss, met = policy_loss("siren", logp, old, adv, m, logits=z, siren_top_p=1.0, siren_anchor=0.3)
    assert met["siren/entropy"] == pytest.approx(e_hand, abs=1e-12)
    assert met["siren/frac_peak"] == pytest.approx(2 / 10)
    assert loss.item() == pytest.approx(pg.item() + 0.005 * (e_hand - 0.3) ** 2, abs=1e-12)
    # anchor None: the current E is the anchor -> no penalty, value reported for the trainer to keep
    loss0, met0 = policy_loss("siren", logp, old, adv, m, logits=z, siren_top_p=1.0)
    assert loss0.item() == pytest.approx(pg.item(), abs=1e-12)
    assert met0["siren/anchor"] == pytest.approx(e_hand, abs=1e-12)
    # the penalty's gradient touches only the logits of the peak tokens
    (g_a,) = torch.autograd.grad(loss, z, retain_graph=True)
    (g_0,) = torch.autograd.grad(loss0, z)
    diff = (g_a - g_0).abs().sum(-1)  # (2, 5)
    peak = hp == hp.max(-1, keepdim=True).values
    assert bool((diff[peak] > 1e-8).all()) and bool((diff[~peak] == 0).all())


def test_siren_padding_invariance_and_errors():
    z, logp, old, adv = _siren_case()
    m = torch.ones(2, 5)
    base, bm = policy_loss("siren", logp, old, adv, m, logits=z, siren_anchor=0.5)
    zp = torch.cat([z.detach(), 30 * torch.randn(2, 1, 6, dtype=D64)], dim=1)
    cat = lambda x, v: torch.cat([x.detach(), torch.full((2, 1), v, dtype=D64)], dim=1)
    padded, pm = policy_loss("siren", cat(logp, -0.1), cat(old, -3.0), cat(adv, 9.0), cat(m, 0.0), logits=zp,
                             siren_anchor=0.5)
    assert padded.item() == pytest.approx(base.item(), abs=1e-12)
    assert pm == pytest.approx(bm)
    with pytest.raises(ValueError, match="needs logits"):
        policy_loss("siren", logp, old, adv, m)


# ---------------------------------------------------------------- epo


def test_epo_hand_values_and_penalty_gradient():
    h = t([[0.2, 1.0, 2.0]]).requires_grad_(True)
    logp = torch.zeros(1, 3, dtype=D64, requires_grad=True)
    adv = t([[1.0, 1.0, 1.0]])
    m = torch.ones(1, 3)
    loss, met = policy_loss("epo", logp, torch.zeros(1, 3, dtype=D64), adv, m, entropy=h, epo_hist_entropy=1.0)
    # band [0.5, 1.5]: penalty = 0.1 * [0.3, 0, 0.5]; agg H = 3.2 / 3 ; agg penalty = 0.08 / 3 ; pg = -1
    assert met["epo/entropy"] == pytest.approx(3.2 / 3)
    assert met["epo/penalty"] == pytest.approx(0.08 / 3)
    assert met["epo/frac_out_of_band"] == pytest.approx(2 / 3)
    assert loss.item() == pytest.approx(-1 - 1e-3 * (3.2 / 3 - 0.08 / 3), abs=1e-12)
    (gh,) = torch.autograd.grad(loss, h)
    # dL/dH = -c/3 + c * c_s * 0.1 * (-1 below, 0 inside, +1 above) / 3
    assert torch.allclose(gh, t([[-1.1e-3 / 3, -1e-3 / 3, -0.9e-3 / 3]]), atol=1e-15)
    # the penalty alone: non-zero gradient exactly outside the band (the reference's step penalty has none)
    loss_ns, _ = policy_loss("epo", logp, torch.zeros(1, 3, dtype=D64), adv, m, entropy=h, epo_hist_entropy=1.0,
                             epo_smooth_coef=0.0)
    (gh_ns,) = torch.autograd.grad(loss_ns, h)
    pen_grad = gh - gh_ns
    assert (pen_grad[0, 0] != 0) and (pen_grad[0, 1] == 0) and (pen_grad[0, 2] != 0)


def test_epo_phase_history_and_logits_path():
    h = t([[0.2, 1.0, 2.0], [0.5, 0.6, 0.7]])
    logp = torch.zeros(2, 3, dtype=D64, requires_grad=True)
    adv = t([[1.0], [-1.0]]).expand(2, 3)
    m = torch.ones(2, 3)
    pg, _ = policy_loss("vanilla", logp, torch.zeros(2, 3, dtype=D64), adv, m)
    early, me = policy_loss("epo", logp, torch.zeros(2, 3, dtype=D64), adv, m, entropy=h, epo_hist_entropy=1.0,
                            epo_phase=0.3)
    assert early.item() == pytest.approx(pg.item(), abs=1e-15) and me["epo/active"] == 0.0
    nohist, mn = policy_loss("epo", logp, torch.zeros(2, 3, dtype=D64), adv, m, entropy=h)
    assert mn["epo/penalty"] == 0.0
    assert nohist.item() == pytest.approx(pg.item() - 1e-3 * h.mean().item(), abs=1e-15)
    # per-sample history (B,): sequence 1 with Hbar 0.2 -> band [0.1, 0.3]: all three above
    _, mb = policy_loss("epo", logp, torch.zeros(2, 3, dtype=D64), adv, m, entropy=h,
                        epo_hist_entropy=t([1.0, 0.2]))
    assert mb["epo/frac_out_of_band"] == pytest.approx(5 / 6)
    g = torch.Generator().manual_seed(4)
    z = torch.randn(2, 3, 5, generator=g, dtype=D64)
    a, _ = policy_loss("epo", logp, torch.zeros(2, 3, dtype=D64), adv, m, logits=z, epo_hist_entropy=1.2)
    b, _ = policy_loss("epo", logp, torch.zeros(2, 3, dtype=D64), adv, m, entropy=entropy_from_logits(z),
                       epo_hist_entropy=1.2)
    assert a.item() == pytest.approx(b.item(), abs=1e-12)
    with pytest.raises(ValueError, match="needs entropy"):
        policy_loss("epo", logp, torch.zeros(2, 3, dtype=D64), adv, m)


def test_epo_action_level_shape():
    h = t([[0.2], [1.0], [3.0]]).requires_grad_(True)
    lp = torch.zeros(3, 1, dtype=D64, requires_grad=True)
    loss, met = policy_loss("epo", lp, torch.zeros(3, 1, dtype=D64), torch.ones(3, 1, dtype=D64),
                            torch.ones(3, 1), entropy=h, epo_hist_entropy=1.0)
    # penalties 0.1 * [0.3, 0, 1.5] ; mean H 4.2 / 3
    assert loss.item() == pytest.approx(-1 - 1e-3 * (4.2 / 3 - 0.18 / 3), abs=1e-12)
    assert met["epo/frac_out_of_band"] == pytest.approx(2 / 3)


# ---------------------------------------------------------------- gradcheck (float64, selections fixed)


def test_gradcheck_lp_reg_siren_epo():
    g = torch.Generator().manual_seed(5)
    z = torch.randn(2, 4, 5, generator=g, dtype=D64, requires_grad=True)
    old_z = z.detach() + 0.3 * torch.randn(2, 4, 5, generator=g, dtype=D64)
    tokens = torch.randint(0, 5, (2, 4), generator=g)
    adv = t([[-1.0], [0.6]]).expand(2, 4).clone()
    m = torch.ones(2, 4, dtype=D64)
    m[1, -1] = 0

    def logp_of(zz):
        return torch.log_softmax(zz, -1).gather(-1, tokens[..., None]).squeeze(-1)

    old = logp_of(old_z)

    def f_lp(zz):  # proxy from fixed old logits: the selection does not move with zz
        return policy_loss("lp_reg", logp_of(zz), old, adv, m, logits=zz, old_logits=old_z, tokens=tokens,
                           lp_reg_neg_ratio=0.5, lp_reg_kappa=0.3)[0]

    def f_siren(zz):
        return policy_loss("siren", logp_of(zz), old, adv, m, logits=zz, siren_anchor=0.4, siren_top_p=0.9,
                           agg="seq-mean-token-sum-norm")[0]

    def f_epo(zz):
        return policy_loss("epo", logp_of(zz), old, adv, m, logits=zz, epo_hist_entropy=1.0, epo_coef=0.5)[0]

    for f in (f_lp, f_siren, f_epo):
        assert torch.autograd.gradcheck(f, (z,), eps=1e-6, atol=1e-7)
    _, met = policy_loss("lp_reg", logp_of(z), old, adv, m, logits=z, old_logits=old_z, tokens=tokens,
                         lp_reg_neg_ratio=0.5, lp_reg_kappa=0.3)
    assert met["lp_reg/n_candidates"] == 2  # 4 negative tokens, half of them
    assert met["lp_reg/n_regularized"] == 1  # the gradcheck covered the k3 path


def test_epo_padding_never_changes_loss():
    h = t([[0.2, 1.0, 2.0], [0.5, 0.6, 0.7]])
    logp = t([[0.1, -0.2, 0.05], [0.3, 0.0, -0.4]])
    adv = t([[1.0], [-1.0]]).expand(2, 3)
    m = torch.ones(2, 3)
    base, bm = policy_loss("epo", logp, torch.zeros(2, 3, dtype=D64), adv, m, entropy=h, epo_hist_entropy=1.0)
    pad = lambda x, v: torch.cat([x.detach(), torch.full((2, 2), v, dtype=D64)], dim=1)
    padded, pm = policy_loss("epo", pad(logp, 4.0), pad(torch.zeros(2, 3, dtype=D64), -4.0), pad(adv, 30.0),
                             pad(m, 0.0), entropy=pad(h, 50.0), epo_hist_entropy=1.0)
    assert padded.item() == pytest.approx(base.item(), abs=1e-12)
    assert pm == pytest.approx(bm)
