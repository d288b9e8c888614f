"""The entropy mechanism of softmax policy gradient (Cui et al. 2025, "The Entropy Mechanism of Reinforcement
Learning for Reasoning Language Models", arXiv 2505.22617), checked exactly on a tabular softmax policy.

Setting: one state, logits z in R^K, pi = softmax(z), per-action advantage A (K,), centred so E_pi[A] = 0.
Entropy gradient: dH/dz_k = -pi_k (log pi_k + H), hence for any logit step dz

    H(z + dz) - H(z) = -Cov_{a~pi}(log pi(a), dz_a) + O(|dz|^2).                       (*)

* Vanilla (exact expected-gradient) PG on the logits: J = E_pi[A], dJ/dz = pi (A - E_pi A), step
  dz = eta * pi * A  =>  dH ~= -eta * Cov_{a~pi}(log pi(a), pi(a) A(a))   (the paper's Lemma for softmax PG).
* Natural PG: dz = eta * A  =>  dH ~= -eta * Cov_{a~pi}(log pi(a), A(a)).

The tests check that the measured one-step change matches the first-order prediction with an O(eta^2)
error (halving eta divides the error by ~4, the ratio -> 1), that the *centred* advantage is required in the
vanilla formula, and that an SGD step on our ``vanilla`` loss performs exactly the vanilla update above.
"""

from __future__ import annotations

from itertools import pairwise

import pytest
import torch

from rl.losses import policy_loss


def _entropy(z: torch.Tensor) -> torch.Tensor:
    logp = torch.log_softmax(z, -1)
    return -(logp.exp() * logp).sum(-1)


def _cov_pi(pi: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cov_{a~pi}(x(a), y(a)) = E_pi[x y] - E_pi[x] E_pi[y]."""
    return (pi * x * y).sum() - (pi * x).sum() * (pi * y).sum()


def _random_case(seed: int, k: int = 8):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(k, generator=g, dtype=torch.float64) * 1.5
    reward = torch.rand(k, generator=g, dtype=torch.float64)
    pi = torch.softmax(z, -1)
    adv = reward - (pi * reward).sum()  # centred: E_pi[A] = 0
    return z, pi, reward, adv


def _check_first_order(z, direction, predicted_slope):
    """measured(eta) = H(z + eta d) - H(z); prediction eta * slope. Returns relative errors over eta."""
    etas = [0.2 / 2**i for i in range(10)]
    errs, ratios = [], []
    for eta in etas:
        measured = _entropy(z + eta * direction) - _entropy(z)
        pred = eta * predicted_slope
        errs.append(abs(float(measured - pred)))
        ratios.append(float(measured / pred))
    return etas, errs, ratios


@pytest.mark.parametrize("seed", range(6))
def test_vanilla_pg_entropy_change_is_minus_eta_cov_logpi_pi_times_adv(seed):
    z, pi, _, adv = _random_case(seed)
    direction = pi * adv  # vanilla expected-gradient step per unit eta: dz = eta * pi * A
    slope = -_cov_pi(pi, torch.log(pi), pi * adv)
    assert abs(float(slope)) > 1e-4  # a non-degenerate case
    _, errs, ratios = _check_first_order(z, direction, slope)
    assert abs(ratios[-1] - 1.0) < 0.01, ratios  # ratio -> 1 as eta -> 0
    for a, b in pairwise(errs[4:]):  # O(eta^2): halving eta divides the error by ~4
        assert 3.0 < a / b < 5.0, errs
    assert abs(ratios[-1] - 1) < abs(ratios[0] - 1)


@pytest.mark.parametrize("seed", range(6))
def test_natural_pg_entropy_change_is_minus_eta_cov_logpi_adv(seed):
    z, pi, _, adv = _random_case(seed)
    slope = -_cov_pi(pi, torch.log(pi), adv)
    _, errs, ratios = _check_first_order(z, adv, slope)
    assert abs(ratios[-1] - 1.0) < 0.01, ratios
    for a, b in pairwise(errs[4:]):
        assert 3.0 < a / b < 5.0, errs


def test_formulas_are_not_interchangeable():
    """The vanilla update needs Cov(log pi, pi*A) with the centred A; the natural-PG covariance or the raw
    (uncentred) reward give a different, wrong first-order slope for that update."""
    z, pi, reward, adv = _random_case(11)
    exact = float(torch.autograd.functional.jvp(_entropy, z, pi * adv)[1])  # dH along the vanilla step
    right = float(-_cov_pi(pi, torch.log(pi), pi * adv))
    natural = float(-_cov_pi(pi, torch.log(pi), adv))
    uncentred = float(-_cov_pi(pi, torch.log(pi), pi * reward))
    assert exact == pytest.approx(right, rel=1e-10)
    assert abs(natural - exact) > 0.05 * abs(exact)
    assert abs(uncentred - exact) > 0.05 * abs(exact)


def test_entropy_gradient_hand_computed():
    # K = 2, z = (0, ln 3): pi = (1/4, 3/4), H = 0.5623351; dH/dz_k = -pi_k (log pi_k + H)
    # dH/dz_1 = -(1/4)(ln(1/4) + 0.5623351) = -(1/4)(-1.3862944 + 0.5623351) = 0.2059898
    z = torch.tensor([0.0, torch.log(torch.tensor(3.0)).item()], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(_entropy(z), z)
    assert g[0].item() == pytest.approx(0.2059898, abs=1e-6)
    assert g[1].item() == pytest.approx(-0.2059898, abs=1e-6)  # gradients of H sum to zero over logits


@pytest.mark.parametrize("seed", range(3))
def test_sgd_on_vanilla_loss_is_the_expected_gradient_update(seed):
    """Enumerate all K actions as K one-token rows with advantage K * pi_k * A_k (token-mean divides by K):
    loss = -(1/K) sum_k K pi_k A_k r_k, whose z-gradient at r = 1 is -sum_k pi_k A_k (e_k - pi) = -pi * A
    (E_pi A = 0). One SGD step with lr eta therefore gives z + eta * pi * A, the vanilla update tested above,
    and the entropy change of that step obeys the covariance law."""
    z0, pi, _, adv = _random_case(seed)
    k, eta = z0.numel(), 1e-3
    z = z0.clone().requires_grad_()
    logp = torch.log_softmax(z, -1)[:, None]  # (K, 1): action k in row k
    loss, metrics = policy_loss(
        "vanilla", logp, logp.detach(), (k * pi * adv)[:, None], torch.ones(k, 1, dtype=torch.float64)
    )
    loss.backward()
    with torch.no_grad():
        z_new = z0 - eta * z.grad
    assert torch.allclose(z_new, z0 + eta * pi * adv, atol=1e-15)
    assert metrics["clipfrac_low"] == 0.0 and metrics["clipfrac_high"] == 0.0
    measured = float(_entropy(z_new) - _entropy(z0))
    predicted = float(-eta * _cov_pi(pi, torch.log(pi), pi * adv))
    assert measured == pytest.approx(predicted, rel=2e-2)


TOY_METHODS = {
    "vanilla": {},
    "clip_cov": {"clip_cov_ratio": 0.2},
    "kl_cov": {"kl_cov_ratio": 0.2},
    "steer": {},
    "bapo": {},
}


def test_toy_bandit_training_fast_version(tmp_path):
    """Seeded miniature of benchmarks/rl_entropy_toy.py (setting B, 30 steps, one seed): every method learns
    (reward up by > 0.2 from the decoy-biased start), vanilla's entropy collapses below half its start, and a
    rerun reproduces the curves exactly. Which method keeps more entropy is measured in the benchmark."""
    from rl.toy import bandit_entropy_run

    task = {
        "steps": 30,
        "batch_size": 4,
        "group_size": 8,
        "num_minibatches": 2,
        "lr": 0.1,
        "decoy_logit": 3.0,
    }
    runs = {
        name: bandit_entropy_run(name, seed=0, run_dir=str(tmp_path / name), loss_cfg=cfg, **task)
        for name, cfg in TOY_METHODS.items()
    }
    for name, c in runs.items():
        assert len(c["entropy"]) == len(c["reward"]) == 31
        start, end = c["reward"][0], c["reward"][-1]
        assert start < 0.5 and end > start + 0.2, (name, start, end)
        assert c["entropy"][-1] < c["entropy"][0], name
    h = runs["vanilla"]["entropy"]
    assert h[-1] < 0.5 * h[0], h  # vanilla collapses entropy quickly
    again = bandit_entropy_run(
        "clip_cov", seed=0, run_dir=str(tmp_path / "again"), loss_cfg=TOY_METHODS["clip_cov"], **task
    )
    assert again == runs["clip_cov"]
