"""Per-token KL estimators between the current policy and a reference policy.

Source: volcengine/verl@b178a3cd, ``verl/trainer/ppo/core_algos.py`` ``kl_penalty`` /
``kl_penalty_forward`` (see /work/shared/references/rl-optimizers.md, section 1). With d = logp - ref_logp:

* ``k1`` (alias ``kl``): d  (unbiased, high variance)
* ``abs``: |d|
* ``k2`` (alias ``mse``): d^2 / 2
* ``k3`` (alias ``low_var_kl``): x = clamp(-d, -20, 20); clamp(exp(x) - x - 1, -10, 10)  (Schulman's low-variance
  estimator, non-negative)
* a ``+`` suffix (``k1+``, ``abs+``, ``k3+``): straight-through: the value of the estimator, the gradient of
  ``k2`` (d/dlogp = d), which is an unbiased gradient of KL(pi || ref) for on-policy samples.
"""

from __future__ import annotations

import torch

__all__ = ["KL_KINDS", "kl_penalty"]

_ALIASES = {"kl": "k1", "mse": "k2", "low_var_kl": "k3"}
_BASE_KINDS = ("k1", "abs", "k2", "k3")
KL_KINDS = _BASE_KINDS + tuple(k + "+" for k in _BASE_KINDS if k != "k2") + tuple(_ALIASES)


def _forward(d: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "k1":
        return d
    if kind == "abs":
        return d.abs()
    if kind == "k2":
        return 0.5 * d.square()
    x = torch.clamp(-d, -20.0, 20.0)  # log(ref / pi)
    return torch.clamp(torch.exp(x) - x - 1.0, -10.0, 10.0)


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, kind: str = "k3") -> torch.Tensor:
    """Per-token KL estimate, same shape as the inputs.

    Args:
        logp: (B, T) log-probabilities under the current policy (with grad).
        ref_logp: (B, T) log-probabilities under the reference policy.
        kind: one of :data:`KL_KINDS` (see the module docstring for each formula).

    Returns:
        (B, T) tensor; the caller masks and aggregates it (``rl.losses.terms.kl_loss``).
    """
    if logp.shape != ref_logp.shape:
        raise ValueError(
            f"logp {tuple(logp.shape)} and ref_logp {tuple(ref_logp.shape)} must have the same shape"
        )
    straight_through = kind.endswith("+")
    base = _ALIASES.get(kind.rstrip("+"), kind.rstrip("+"))
    if base not in _BASE_KINDS or (straight_through and kind.count("+") > 1):
        raise ValueError(f"unknown KL kind {kind!r}; valid: {', '.join(KL_KINDS)}")
    d = logp - ref_logp
    value = _forward(d, base)
    if not straight_through or base == "k2":
        return value
    grad_path = 0.5 * d.square()
    return grad_path - grad_path.detach() + value.detach()
