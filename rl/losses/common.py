"""Shared pieces of the policy losses: aggregation modes, masked statistics, clip metrics, option checks.

Source of the aggregation modes: volcengine/verl@b178a3cd ``verl/trainer/ppo/core_algos.py`` ``agg_loss``
(single process: no global token count, no data-parallel scaling).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

import torch

__all__ = [
    "AGG_MODES",
    "EXTRA_INPUTS",
    "aggregate",
    "check_options",
    "clip_bounds",
    "log_ratio",
    "masked_mean",
    "ratio_metrics",
    "ratio_stats",
    "to_floats",
]

AGG_MODES = ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm")
EXTRA_INPUTS = ("entropy", "ref_logp", "logits", "generator")


def aggregate(token_loss: torch.Tensor, mask: torch.Tensor, mode: str = "token-mean") -> torch.Tensor:
    """Reduce a (B, T) per-token loss to a scalar; padded entries never reach the result.

    * ``token-mean``: sum(L*m) / sum(m)
    * ``seq-mean-token-sum``: mean over non-empty sequences of sum_t L*m
    * ``seq-mean-token-mean``: mean over non-empty sequences of sum_t L*m / (sum_t m + 1e-8)
    * ``seq-mean-token-sum-norm``: sum(L*m) / T with T = mask.shape[-1] (no division by the number of
      sequences: Dr.GRPO's constant normaliser)

    Padded entries are zeroed with ``where`` (not multiplied by 0), so a non-finite value in padding cannot
    turn the loss into NaN.

    Args:
        token_loss: (B, T) per-token loss.
        mask: (B, T) 1/True for valid tokens (a float mask acts as per-token weights).
        mode: one of :data:`AGG_MODES`.
    """
    m = mask.to(token_loss.dtype)
    weighted = torch.where(
        m != 0, token_loss * m, torch.zeros((), dtype=token_loss.dtype, device=token_loss.device)
    )
    if mode == "token-mean":
        return weighted.sum() / m.sum().clamp_min(1.0)
    if mode == "seq-mean-token-sum-norm":
        return weighted.sum() / mask.shape[-1]
    seq_len = m.sum(-1)
    nonempty = (seq_len > 0).to(token_loss.dtype)
    n_seq = nonempty.sum().clamp_min(1.0)
    if mode == "seq-mean-token-sum":
        return (weighted.sum(-1) * nonempty).sum() / n_seq
    if mode == "seq-mean-token-mean":
        return (weighted.sum(-1) / (seq_len + 1e-8) * nonempty).sum() / n_seq
    raise ValueError(f"unknown aggregation mode {mode!r}; valid: {', '.join(AGG_MODES)}")


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over valid (mask != 0) entries; 0 when there are none. Same-shape inputs."""
    m = mask.to(x.dtype)
    return torch.where(
        m != 0, x * m, torch.zeros((), dtype=x.dtype, device=x.device)
    ).sum() / m.sum().clamp_min(1.0)


def log_ratio(logp: torch.Tensor, old_logp: torch.Tensor) -> torch.Tensor:
    """clamp(logp - old_logp, -20, 20), the shared numerical guard of every ratio."""
    return torch.clamp(logp - old_logp, -20.0, 20.0)


def clip_bounds(clip_low: float, clip_high: float | None) -> tuple[float, float]:
    """Validate PPO clip ranges and return the absolute ratio bounds (1 - clip_low, 1 + clip_high).

    ``clip_high=None`` means ``clip_high = clip_low`` (symmetric clip); DAPO's clip-higher is clip_high > clip_low.
    """
    clip_high = clip_low if clip_high is None else clip_high
    if not 0.0 <= clip_low <= 1.0:
        raise ValueError(
            f"clip_low must be in [0, 1] (got {clip_low}); it is the eps of the lower bound 1 - eps (1 = no lower clip)"
        )
    if clip_high < 0.0:
        raise ValueError(
            f"clip_high must be >= 0 (got {clip_high}); it is the eps of the upper bound 1 + eps"
        )
    return 1.0 - clip_low, 1.0 + clip_high


def ratio_stats(
    ratio: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    low: torch.Tensor | float,
    high: torch.Tensor | float,
    logp: torch.Tensor,
    old_logp: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """The tensors behind :func:`ratio_metrics` (0-dim, detached), for losses that add their own metrics
    and convert everything with one :func:`to_floats` (one device sync instead of one per metric)."""
    with torch.no_grad():
        clip_low = (ratio < low) & (advantages < 0)
        clip_high = (ratio > high) & (advantages > 0)
        return {
            "clipfrac_low": masked_mean(clip_low.to(ratio.dtype), mask),
            "clipfrac_high": masked_mean(clip_high.to(ratio.dtype), mask),
            "approx_kl": masked_mean(old_logp - logp, mask),
            "ratio_mean": masked_mean(ratio, mask),
        }


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
    KL(old || new)); ``ratio_mean``: masked mean ratio. ``low``/``high`` are absolute ratio bounds, scalars
    or (B, T) tensors.
    """
    return to_floats(ratio_stats(ratio, advantages, mask, low, high, logp, old_logp))


def to_floats(metrics: Mapping[str, torch.Tensor | float | int]) -> dict[str, float]:
    """Convert a dict of 0-dim tensors / numbers to floats with a single device-to-host copy."""
    keys = [k for k, v in metrics.items() if isinstance(v, torch.Tensor)]
    out = {k: float(v) for k, v in metrics.items() if not isinstance(v, torch.Tensor)}
    if keys:
        values = torch.stack([metrics[k].detach().reshape(()).to(torch.float64) for k in keys]).tolist()
        out.update(zip(keys, values))
    return {k: out[k] for k in metrics}


def check_options(method: str, extra: Mapping[str, object], valid: Iterable[str]) -> None:
    """Fail fast on a mistyped option of ``method``.

    Unknown keywords are tolerated (the trainer may pass one config to every loss, and extra inputs such as
    ``entropy``/``logits`` that this method ignores), except when they are prefixed by the method's own name
    (``clip_cov_ration``) or are close to a valid option name (``clip_hihg``): those raise ``TypeError``
    naming the valid options. Keys prefixed by another registered method's name are that method's options.
    """
    from rl.losses import POLICY_LOSSES  # lazy: rl.losses imports this module

    valid = tuple(valid)
    others = [name + "_" for name in POLICY_LOSSES if name != method and not method.startswith(name + "_")]
    for key in extra:
        if key in EXTRA_INPUTS or any(key.startswith(p) for p in others):
            continue  # an input or another method's option
        close = difflib.get_close_matches(key, valid, n=1, cutoff=0.85)
        if key.startswith(method + "_") or close:
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise TypeError(
                f"unknown option {key!r} for policy loss {method!r}{hint} valid options: {', '.join(valid)}"
            )
