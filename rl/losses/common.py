"""Shared pieces of the policy losses: aggregation modes, masked statistics, clip metrics."""
from __future__ import annotations

import torch

AGG_MODES = ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm")


def aggregate(token_loss: torch.Tensor, mask: torch.Tensor, mode: str = "token-mean") -> torch.Tensor:
    """Reduce a (B, T) per-token loss to a scalar.

    * ``token-mean``: sum(L*m) / sum(m)
    * ``seq-mean-token-sum``: mean over non-empty sequences of sum_t L*m
    * ``seq-mean-token-mean``: mean over non-empty sequences of sum_t L*m / (sum_t m + 1e-8)
    * ``seq-mean-token-sum-norm``: sum(L*m) / T with T = mask.shape[-1] (no division by the number of
      sequences: Dr.GRPO's constant normaliser)
    """
    m = mask.to(token_loss.dtype)
    if mode == "token-mean":
        return (token_loss * m).sum() / m.sum().clamp_min(1.0)
    if mode == "seq-mean-token-sum-norm":
        return (token_loss * m).sum() / mask.shape[-1]
    seq_len = m.sum(-1)
    nonempty = (seq_len > 0).to(token_loss.dtype)
    n_seq = nonempty.sum().clamp_min(1.0)
    if mode == "seq-mean-token-sum":
        return ((token_loss * m).sum(-1) * nonempty).sum() / n_seq
    if mode == "seq-mean-token-mean":
        return ((token_loss * m).sum(-1) / (seq_len + 1e-8) * nonempty).sum() / n_seq
    raise ValueError(f"unknown aggregation mode {mode!r}; valid: {', '.join(AGG_MODES)}")


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over valid (mask = 1) entries; 0 when there are none."""
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum().clamp_min(1.0)


def log_ratio(logp: torch.Tensor, old_logp: torch.Tensor) -> torch.Tensor:
    """clamp(logp - old_logp, -20, 20), the shared numerical guard of every ratio."""
    return torch.clamp(logp - old_logp, -20.0, 20.0)


def ratio_metrics(
    ratio: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    low: torch.Tensor | float,
    high: torch.Tensor | float,
    logp: torch.Tensor,
    old_logp: torch.Tensor,
) -> dict[str, float]:
    """The metrics every loss reports.

    ``clipfrac_low``: fraction of valid tokens with A < 0 and r < low (the clip is active there);
    ``clipfrac_high``: A > 0 and r > high; ``approx_kl``: masked mean of (old_logp - logp) (k1 estimate of
    KL(old || new)); ``ratio_mean``: masked mean ratio.
    """
    with torch.no_grad():
        clip_low = (ratio < low) & (advantages < 0)
        clip_high = (ratio > high) & (advantages > 0)
        return {
            "clipfrac_low": float(masked_mean(clip_low.to(ratio.dtype), mask)),
            "clipfrac_high": float(masked_mean(clip_high.to(ratio.dtype), mask)),
            "approx_kl": float(masked_mean(old_logp - logp, mask)),
            "ratio_mean": float(masked_mean(ratio, mask)),
        }
