"""Log-probabilities and entropies of softmax policies without materialising more than a chunk of logits.

Three kernels, all pure torch (CPU and CUDA):

* :func:`entropy_from_logits` -- ``H = logsumexp(z) - sum_v softmax(z)_v * z_v`` per row, row-chunked with
  fp32 math per chunk (verl ``entropy_from_logits_with_chunking``, volcengine/verl@b178a3cd,
  ``verl/utils/torch_functional.py``).
* :func:`logprobs_from_logits` -- ``log p(y) = z_y - logsumexp(z)`` per row, row-chunked (verl
  ``logprobs_from_logits_v2``, same file).
* :func:`fused_linear_logprobs_entropy` -- the LM head and both quantities in one ``autograd.Function`` that
  never holds the full ``(N, V)`` logits: forward and backward walk token chunks and recompute each chunk's
  logits (verl ``FusedLinearForPPO``, ``verl/utils/experimental/torch_functional.py``).

Math dtype: ``promote_types(input dtype, float32)`` -- bf16/fp16 inputs are computed in fp32, float64 stays
float64 (so ``gradcheck`` works).
"""

from __future__ import annotations

import torch

__all__ = ["entropy_from_logits", "fused_linear_logprobs_entropy", "logprobs_from_logits"]

_DEFAULT_FUSED_CHUNK = 512  # tokens per chunk, verl FusedLinearForPPO's default


def _math_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)


def _check_chunk(chunk_size: int | None, rows: int) -> int:
    if chunk_size is None:
        return max(rows, 1)
    if int(chunk_size) < 1:
        raise ValueError(
            f"chunk_size must be a positive number of rows (got {chunk_size}); use None for no chunking"
        )
    return int(chunk_size)


def _entropy_rows(z: torch.Tensor) -> torch.Tensor:
    """(R, V) logits in math dtype -> (R,) entropy; -inf logits (masked vocabulary) contribute 0."""
    lse = torch.logsumexp(z, dim=-1)  # (R,)
    p = torch.exp(z - lse.unsqueeze(-1))  # (R, V)
    z_finite = z.masked_fill(torch.isneginf(z), 0.0)
    return lse - (p * z_finite).sum(-1)


def entropy_from_logits(logits: torch.Tensor, chunk_size: int | None = None) -> torch.Tensor:
    """Entropy of ``softmax(logits)`` over the last axis.

    Formula: ``H = logsumexp(z) - sum_v softmax(z)_v z_v`` (verl ``entropy_from_logits``), computed on row
    chunks of ``chunk_size`` rows cast to fp32 (or float64 for float64 input), so a bf16 ``(B, T, V)`` input
    never gets a full fp32 copy. Differentiable; note that under autograd each chunk's softmax is kept for
    backward, so the memory saving applies to ``torch.no_grad()`` use.

    Args:
        logits: (..., V) logits, any float dtype.
        chunk_size: rows (flattened leading positions) per chunk; ``None`` = one chunk.

    Returns:
        (...,) entropies in ``logits.dtype``.
    """
    if logits.ndim < 1 or logits.shape[-1] < 1:
        raise ValueError(
            f"logits must have a non-empty last (vocabulary) axis, got shape {tuple(logits.shape)}"
        )
    lead = logits.shape[:-1]
    flat = logits.reshape(-1, logits.shape[-1])  # (R, V)
    step = _check_chunk(chunk_size, flat.shape[0])
    dt = _math_dtype(logits.dtype)
    parts = [_entropy_rows(flat[i : i + step].to(dt)) for i in range(0, flat.shape[0], step)]
    out = torch.cat(parts) if parts else flat.new_zeros(0, dtype=dt)
    return out.to(logits.dtype).reshape(lead)


def logprobs_from_logits(
    logits: torch.Tensor, labels: torch.Tensor, chunk_size: int | None = None
) -> torch.Tensor:
    """Log-probability of ``labels`` under ``softmax(logits)``.

    Formula: ``log p(y) = z_y - logsumexp(z)`` (verl ``logprobs_from_logits_v2``), on row chunks in fp32.

    Args:
        logits: (..., V) logits.
        labels: (...,) integer token ids in ``[0, V)``.
        chunk_size: rows per chunk; ``None`` = one chunk.

    Returns:
        (...,) log-probabilities in ``logits.dtype``.
    """
    if labels.shape != logits.shape[:-1]:
        raise ValueError(
            f"labels shape {tuple(labels.shape)} must equal logits shape without its last axis "
            f"{tuple(logits.shape[:-1])}"
        )
    _check_labels(labels, logits.shape[-1])
    flat = logits.reshape(-1, logits.shape[-1])  # (R, V)
    lab = labels.reshape(-1, 1)  # (R, 1)
    step = _check_chunk(chunk_size, flat.shape[0])
    dt = _math_dtype(logits.dtype)
    parts = []
    for i in range(0, flat.shape[0], step):
        z = flat[i : i + step].to(dt)
        parts.append(z.gather(-1, lab[i : i + step]).squeeze(-1) - torch.logsumexp(z, dim=-1))
    out = torch.cat(parts) if parts else flat.new_zeros(0, dtype=dt)
    return out.to(logits.dtype).reshape(labels.shape)


def _check_labels(labels: torch.Tensor, vocab: int) -> None:
    if labels.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8):
        raise TypeError(f"labels must be an integer tensor of token ids, got {labels.dtype}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= vocab):
        bad = int(torch.nonzero((labels < 0) | (labels >= vocab))[0, 0]) if labels.ndim else 0
        raise ValueError(
            f"labels must lie in [0, {vocab}) (the vocabulary size); found {int(labels.reshape(-1)[bad])} at "
            f"index {bad}: replace padding ids with any valid id and mask those positions instead"
        )


class _FusedLinearLogpEntropy(torch.autograd.Function):
    """Chunked LM head + log-prob + entropy with an exact recomputing backward (see the public wrapper)."""

    @staticmethod
    def forward(ctx, hidden, weight, labels, temperature, chunk_size):
        dt = _math_dtype(torch.promote_types(hidden.dtype, weight.dtype))
        n = hidden.shape[0]
        w = weight.to(dt)  # (V, D); no copy when already in the math dtype
        logp = hidden.new_empty(n, dtype=dt)
        lse = hidden.new_empty(n, dtype=dt)
        ent = hidden.new_empty(n, dtype=dt)
        for i in range(0, n, chunk_size):
            z = hidden[i : i + chunk_size].to(dt) @ w.t()  # (C, V)
            if temperature != 1.0:
                z.div_(temperature)
            c_lse = torch.logsumexp(z, dim=-1)  # (C,)
            logp[i : i + chunk_size] = z.gather(-1, labels[i : i + chunk_size, None]).squeeze(-1) - c_lse
            lse[i : i + chunk_size] = c_lse
            z.sub_(c_lse[:, None])  # log p, (C, V)
            p_log_p = torch.exp(z).mul_(z).masked_fill_(torch.isneginf(z), 0.0)  # p = 0 contributes 0
            ent[i : i + chunk_size] = -p_log_p.sum(-1)
        ctx.save_for_backward(hidden, weight, labels, lse, ent)
        ctx.temperature = temperature
        ctx.chunk_size = chunk_size
        ctx.math_dtype = dt
        return logp, ent

    @staticmethod
    def backward(ctx, g_logp, g_ent):
        hidden, weight, labels, lse, ent = ctx.saved_tensors
        dt, t, step = ctx.math_dtype, ctx.temperature, ctx.chunk_size
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        n = hidden.shape[0]
        w = weight.to(dt)
        g_logp = torch.zeros(n, dtype=dt, device=hidden.device) if g_logp is None else g_logp.to(dt)
        g_ent = torch.zeros(n, dtype=dt, device=hidden.device) if g_ent is None else g_ent.to(dt)
        d_hidden = torch.empty(hidden.shape, dtype=dt, device=hidden.device) if need_h else None
        d_weight = torch.zeros(weight.shape, dtype=dt, device=weight.device) if need_w else None
        for i in range(0, n, step):
            sl = slice(i, i + step)
            h = hidden[sl].to(dt)  # (C, D)
            logq = h @ w.t()  # (C, V)
            if t != 1.0:
                logq.div_(t)
            logq.sub_(lse[sl, None])  # log p
            p = torch.exp(logq)  # (C, V)
            # dz = g_lp (onehot - p) - g_H p (log p + H); log p = -inf where p = 0 -> term is 0.
            logq.masked_fill_(p == 0, 0.0).add_(ent[sl, None]).mul_(p)
            dz = logq.mul_(-g_ent[sl, None])
            dz.sub_(p.mul_(g_logp[sl, None]))
            dz.scatter_add_(-1, labels[sl, None], g_logp[sl, None])
            if t != 1.0:
                dz.div_(t)
            if need_h:
                d_hidden[sl] = dz @ w
            if need_w:
                d_weight.addmm_(dz.t(), h)
        d_hidden = d_hidden.to(hidden.dtype) if need_h else None
        d_weight = d_weight.to(weight.dtype) if need_w else None
        return d_hidden, d_weight, None, None, None


def fused_linear_logprobs_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 1.0,
    chunk_size: int = _DEFAULT_FUSED_CHUNK,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-prob of ``labels`` and entropy of ``softmax(hidden @ weight.T / temperature)``, chunked.

    Forward, per chunk of ``chunk_size`` tokens: ``z = (h_c @ W^T) / T`` in the math dtype (fp32 for
    bf16/fp16/fp32 input, float64 for float64), ``logp = z_y - logsumexp(z)``, ``H = -sum_v p_v log p_v``.
    Only ``(N,)`` vectors (logsumexp, entropy) are kept for backward. Backward recomputes each chunk's
    logits and applies the exact gradient

        dz = g_lp * (onehot(y) - p) - g_H * p * (log p + H),   then dz /= T,
        dh = dz @ W,   dW += dz^T @ h   (accumulated over chunks),

    (verl ``FusedLinearForPPO`` / ``_fused_linear_for_ppo_bwd``, volcengine/verl@b178a3cd,
    ``verl/utils/experimental/torch_functional.py``). Peak extra memory is a few ``(chunk_size, V)``
    buffers plus one math-dtype copy of ``weight`` when it is bf16/fp16, instead of several ``(N, V)``.

    Args:
        hidden: (N, D) final hidden states (any float dtype; CPU or CUDA).
        weight: (V, D) LM-head weight (same device).
        labels: (N,) integer token ids in ``[0, V)``.
        temperature: sampling temperature T > 0 dividing the logits.
        chunk_size: tokens per chunk (need not divide N).

    Returns:
        ``(logp, entropy)``, both (N,), in ``promote_types(hidden.dtype, float32)``; differentiable with
        respect to ``hidden`` and ``weight``.

    Example:
        >>> h, w = torch.randn(5, 4), torch.randn(7, 4)
        >>> lp, ent = fused_linear_logprobs_entropy(h, w, torch.tensor([0, 1, 2, 3, 6]), chunk_size=2)
        >>> bool(torch.allclose(lp, torch.log_softmax(h @ w.T, -1)[torch.arange(5), [0, 1, 2, 3, 6]], atol=1e-5))
        True
    """
    if hidden.ndim != 2 or weight.ndim != 2 or hidden.shape[1] != weight.shape[1]:
        raise ValueError(
            f"hidden must be (N, D) and weight (V, D) with the same D; got hidden {tuple(hidden.shape)}, "
            f"weight {tuple(weight.shape)}"
        )
    if labels.shape != (hidden.shape[0],):
        raise ValueError(f"labels must be (N,) = ({hidden.shape[0]},), got {tuple(labels.shape)}")
    if hidden.device != weight.device or labels.device != hidden.device:
        raise ValueError(
            f"hidden ({hidden.device}), weight ({weight.device}) and labels ({labels.device}) must share a device"
        )
    if not float(temperature) > 0.0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    step = _check_chunk(chunk_size, hidden.shape[0])
    _check_labels(labels, weight.shape[0])
    return _FusedLinearLogpEntropy.apply(hidden, weight, labels.long(), float(temperature), step)
