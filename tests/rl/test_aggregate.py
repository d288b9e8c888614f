"""rl.losses.common: aggregation modes, masked mean, metric helpers, option checks, by hand."""

from __future__ import annotations

import math

import pytest
import torch

from rl.losses import AGG_MODES, aggregate
from rl.losses.common import check_options, clip_bounds, masked_mean, ratio_metrics, to_floats

# 3 sequences, T = 4; lengths 2, 1, 0 (the last row is all padding, holding garbage)
L = torch.tensor([[1.0, 2.0, 3.0, 9.0], [4.0, 5.0, 6.0, 9.0], [7.0, 7.0, 7.0, 7.0]], dtype=torch.float64)
M = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]])


@pytest.mark.parametrize(
    "mode, expected",
    [
        ("token-mean", (1 + 2 + 4) / 3),  # sum over 3 valid tokens
        ("seq-mean-token-sum", ((1 + 2) + 4) / 2),  # 2 non-empty sequences
        ("seq-mean-token-mean", ((1 + 2) / 2 + 4 / 1) / 2),
        ("seq-mean-token-sum-norm", (1 + 2 + 4) / 4),  # / T = 4, not / #sequences
    ],
)
def test_aggregate_modes_by_hand(mode, expected):
    assert aggregate(L, M, mode).item() == pytest.approx(expected, rel=1e-7)


def test_aggregate_ignores_non_finite_padding_and_its_gradient():
    x = L.clone()
    x[0, 2] = float("nan")
    x[2, :] = float("inf")
    x.requires_grad_()
    for mode in AGG_MODES:
        out = aggregate(x, M, mode)
        assert math.isfinite(out.item())
        (g,) = torch.autograd.grad(out, x)
        assert torch.all(g[M == 0] == 0)
    (g,) = torch.autograd.grad(aggregate(x, M, "token-mean"), x)
    assert g[M == 1].tolist() == pytest.approx([1 / 3] * 3)


def test_aggregate_all_padding_gives_zero_and_bad_mode_raises():
    assert aggregate(L, torch.zeros_like(M), "token-mean").item() == 0.0
    assert aggregate(L, torch.zeros_like(M), "seq-mean-token-mean").item() == 0.0
    with pytest.raises(ValueError, match="unknown aggregation mode 'token-sum'; valid: token-mean"):
        aggregate(L, M, "token-sum")


def test_masked_mean_and_ratio_metrics_by_hand():
    assert masked_mean(L, M).item() == pytest.approx(7 / 3)
    ratio = torch.tensor([[1.5, 0.5, 1.0]])
    adv = torch.tensor([[1.0, -1.0, -1.0]])
    logp = torch.tensor([[-1.0, -2.0, -3.0]])
    old = torch.tensor([[-1.5, -1.0, -3.0]])
    mask = torch.tensor([[1, 1, 1]])
    got = ratio_metrics(ratio, adv, mask, 0.8, 1.2, logp, old)
    assert got["clipfrac_low"] == pytest.approx(1 / 3)  # token 1: A < 0, r = 0.5 < 0.8
    assert got["clipfrac_high"] == pytest.approx(1 / 3)  # token 0: A > 0, r = 1.5 > 1.2
    assert got["approx_kl"] == pytest.approx((-0.5 + 1.0 + 0.0) / 3)  # mean(old - logp)
    assert got["ratio_mean"] == pytest.approx(3.0 / 3)


def test_to_floats_keeps_order_and_plain_numbers():
    out = to_floats({"a": torch.tensor(1.5), "b": 2, "c": torch.tensor([3.0])})
    assert list(out) == ["a", "b", "c"] and out == {"a": 1.5, "b": 2.0, "c": 3.0}


def test_clip_bounds_validate():
    assert clip_bounds(0.2, None) == pytest.approx((0.8, 1.2))
    assert clip_bounds(0.2, 0.28) == pytest.approx((0.8, 1.28))
    assert clip_bounds(1.0, 9.0) == (0.0, 10.0)  # Clip-Cov / Lp-Reg runs: no lower clip
    with pytest.raises(ValueError, match="clip_low must be in"):
        clip_bounds(1.5, None)
    with pytest.raises(ValueError, match="clip_high must be >= 0"):
        clip_bounds(0.2, -0.1)


def test_check_options_catches_typos_but_tolerates_inputs_and_other_methods():
    check_options(
        "vanilla", {"entropy": 1, "clip_cov_ratio": 1, "some_trainer_key": 2}, ("clip_low", "clip_high")
    )
    with pytest.raises(TypeError, match="did you mean 'clip_high'"):
        check_options("vanilla", {"clip_hgh": 0.3}, ("clip_low", "clip_high"))
    with pytest.raises(TypeError, match="unknown option 'clip_cov_ration' for policy loss 'clip_cov'"):
        check_options("clip_cov", {"clip_cov_ration": 1.0}, ("clip_cov_ratio",))
