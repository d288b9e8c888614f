"""rl.entropy: chunked entropy / log-prob kernels and the fused LM-head kernel against unfused torch."""

from __future__ import annotations

import math

import pytest
import torch

from rl.entropy import entropy_from_logits, fused_linear_logprobs_entropy, logprobs_from_logits


def _unfused(hidden, weight, labels, temperature):
    """Reference: full (N, V) logits, torch.log_softmax."""
    logq = torch.log_softmax((hidden @ weight.T) / temperature, dim=-1)  # (N, V)
    return logq.gather(-1, labels[:, None]).squeeze(-1), -(logq.exp() * logq).sum(-1)


def test_entropy_hand_computed():
    # logits [0, 0] -> uniform over 2: H = ln 2; logits [0, ln 3] -> p = (1/4, 3/4):
    # H = -(1/4 ln 1/4 + 3/4 ln 3/4) = 0.25*1.386294 + 0.75*0.287682 = 0.562335
    z = torch.tensor([[0.0, 0.0], [0.0, math.log(3.0)]], dtype=torch.float64)
    expected = torch.tensor(
        [math.log(2.0), 0.25 * math.log(4.0) + 0.75 * math.log(4.0 / 3.0)], dtype=torch.float64
    )
    assert torch.allclose(entropy_from_logits(z), expected, atol=1e-12)
    assert abs(expected[1].item() - 0.5623351446) < 1e-9
    # log p of label 1 in row 2: ln(3/4)
    lp = logprobs_from_logits(z, torch.tensor([0, 1]))
    assert torch.allclose(lp, torch.tensor([math.log(0.5), math.log(0.75)], dtype=torch.float64), atol=1e-12)


@pytest.mark.parametrize("chunk", [None, 1, 3, 64])
def test_entropy_from_logits_matches_categorical(chunk):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(4, 5, 17, generator=g, dtype=torch.float64) * 3
    ref = torch.distributions.Categorical(logits=z).entropy()
    out = entropy_from_logits(z, chunk_size=chunk)
    assert out.shape == (4, 5)
    assert torch.allclose(out, ref, atol=1e-12)


def test_entropy_masked_vocabulary_and_dtype():
    z = torch.tensor([[0.0, 0.0, -math.inf]])
    assert torch.allclose(entropy_from_logits(z), torch.tensor([math.log(2.0)]))
    zb = torch.randn(6, 33, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    out = entropy_from_logits(zb, chunk_size=4)
    assert out.dtype == torch.bfloat16
    ref = torch.distributions.Categorical(logits=zb.float()).entropy()
    assert torch.allclose(out.float(), ref, atol=2e-2)


def test_entropy_gradient_matches_categorical():
    z = torch.randn(3, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(2), requires_grad=True)
    torch.autograd.gradcheck(lambda x: entropy_from_logits(x, chunk_size=2), (z,))


@pytest.mark.parametrize("chunk", [None, 1, 4])
def test_logprobs_from_logits_matches_log_softmax(chunk):
    g = torch.Generator().manual_seed(3)
    z = torch.randn(2, 5, 11, generator=g, dtype=torch.float64)
    y = torch.randint(0, 11, (2, 5), generator=g)
    ref = torch.log_softmax(z, -1).gather(-1, y[..., None]).squeeze(-1)
    assert torch.allclose(logprobs_from_logits(z, y, chunk_size=chunk), ref, atol=1e-12)


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        logprobs_from_logits(torch.zeros(2, 4), torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="labels shape"):
        logprobs_from_logits(torch.zeros(2, 4), torch.tensor([0]))
    with pytest.raises(ValueError, match="chunk_size"):
        entropy_from_logits(torch.zeros(2, 4), chunk_size=0)
    with pytest.raises(ValueError, match="temperature"):
        fused_linear_logprobs_entropy(
            torch.zeros(2, 3), torch.zeros(4, 3), torch.tensor([0, 1]), temperature=0.0
        )
    with pytest.raises(ValueError, match="same D"):
        fused_linear_logprobs_entropy(torch.zeros(2, 3), torch.zeros(4, 2), torch.tensor([0, 1]))


@pytest.mark.parametrize("temperature", [1.0, 0.6, 1.7])
@pytest.mark.parametrize("chunk", [1, 5, 7, 64])  # 5 and 7 do not divide N = 13
def test_fused_equals_unfused_values_and_grads_float64(temperature, chunk):
    g = torch.Generator().manual_seed(4)
    n, d, v = 13, 6, 19
    h = torch.randn(n, d, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(v, d, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, v, (n,), generator=g)
    g_lp, g_h = (
        torch.randn(n, generator=g, dtype=torch.float64),
        torch.randn(n, generator=g, dtype=torch.float64),
    )

    lp, ent = fused_linear_logprobs_entropy(h, w, y, temperature, chunk)
    dh, dw = torch.autograd.grad((lp * g_lp).sum() + (ent * g_h).sum(), (h, w))
    lp_ref, ent_ref = _unfused(h, w, y, temperature)
    dh_ref, dw_ref = torch.autograd.grad((lp_ref * g_lp).sum() + (ent_ref * g_h).sum(), (h, w))

    assert lp.dtype == torch.float64 and lp.shape == (n,) and ent.shape == (n,)
    for a, b in ((lp, lp_ref), (ent, ent_ref), (dh, dh_ref), (dw, dw_ref)):
        assert torch.allclose(a, b, atol=1e-6, rtol=0), (a - b).abs().max()
    assert (lp - lp_ref).abs().max() < 1e-12  # much tighter than asked in float64


def test_fused_gradcheck_float64():
    g = torch.Generator().manual_seed(5)
    h = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(7, 3, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 6, 3, 3, 1])
    assert torch.autograd.gradcheck(lambda a, b: fused_linear_logprobs_entropy(a, b, y, 0.8, 2), (h, w))


def test_fused_only_one_output_used_and_hidden_only_grad():
    g = torch.Generator().manual_seed(6)
    h = torch.randn(9, 4, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(10, 4, generator=g, dtype=torch.float64)  # no grad to weight
    y = torch.randint(0, 10, (9,), generator=g)
    lp, _ = fused_linear_logprobs_entropy(h, w, y, chunk_size=4)
    (dh,) = torch.autograd.grad(lp.sum(), (h,))
    (dh_ref,) = torch.autograd.grad(_unfused(h, w, y, 1.0)[0].sum(), (h,))
    assert torch.allclose(dh, dh_ref, atol=1e-12)
    _, ent = fused_linear_logprobs_entropy(h, w, y, chunk_size=4)
    (dh,) = torch.autograd.grad(ent.sum(), (h,))
    (dh_ref,) = torch.autograd.grad(_unfused(h, w, y, 1.0)[1].sum(), (h,))
    assert torch.allclose(dh, dh_ref, atol=1e-12)


def test_fused_float32_and_bfloat16():
    g = torch.Generator().manual_seed(7)
    n, d, v = 33, 16, 50
    h = torch.randn(n, d, generator=g)
    w = torch.randn(v, d, generator=g) / 4
    y = torch.randint(0, v, (n,), generator=g)
    h64, w64 = h.double().requires_grad_(), w.double().requires_grad_()
    lp_ref, ent_ref = _unfused(h64, w64, y, 0.9)
    dh_ref, dw_ref = torch.autograd.grad(lp_ref.sum() + ent_ref.sum(), (h64, w64))

    h32, w32 = h.clone().requires_grad_(), w.clone().requires_grad_()
    lp, ent = fused_linear_logprobs_entropy(h32, w32, y, 0.9, 8)
    dh, dw = torch.autograd.grad(lp.sum() + ent.sum(), (h32, w32))
    assert lp.dtype == torch.float32
    assert torch.allclose(lp.double(), lp_ref, atol=1e-4) and torch.allclose(ent.double(), ent_ref, atol=1e-4)
    assert torch.allclose(dh.double(), dh_ref, atol=1e-4) and torch.allclose(dw.double(), dw_ref, atol=1e-4)

    hb, wb = h.bfloat16().requires_grad_(), w.bfloat16().requires_grad_()
    lp, ent = fused_linear_logprobs_entropy(hb, wb, y, 0.9, 8)
    dh, dw = torch.autograd.grad(lp.sum() + ent.sum(), (hb, wb))
    assert lp.dtype == torch.float32 and dh.dtype == torch.bfloat16 and dw.dtype == torch.bfloat16
    # bf16 inputs (8-bit mantissa) vs the float64 reference on the *unrounded* inputs.
    assert torch.allclose(lp.double(), lp_ref, atol=0.1) and torch.allclose(ent.double(), ent_ref, atol=0.1)
    assert torch.allclose(dh.double(), dh_ref, atol=0.1, rtol=0.05)
    # against the same bf16-rounded inputs computed unfused in float64 the error is fp32-level
    lp_r, ent_r = _unfused(hb.detach().double(), wb.detach().double(), y, 0.9)
    assert torch.allclose(lp.double(), lp_r, atol=1e-4) and torch.allclose(ent.double(), ent_r, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (run on a GPU machine)")
def test_fused_cuda_matches_cpu():
    g = torch.Generator().manual_seed(8)
    h = torch.randn(300, 32, generator=g)
    w = torch.randn(1000, 32, generator=g) / 5
    y = torch.randint(0, 1000, (300,), generator=g)
    lp_c, ent_c = fused_linear_logprobs_entropy(h, w, y, 1.0, 128)
    hc, wc = h.cuda().requires_grad_(), w.cuda().requires_grad_()
    lp_g, ent_g = fused_linear_logprobs_entropy(hc, wc, y.cuda(), 1.0, 128)
    (lp_g.sum() + ent_g.sum()).backward()
    assert torch.allclose(lp_g.cpu(), lp_c, atol=1e-3) and torch.allclose(ent_g.cpu(), ent_c, atol=1e-3)
    assert hc.grad is not None and torch.isfinite(wc.grad).all()


def test_docstring_examples_run():
    import doctest

    import rl.entropy

    assert doctest.testmod(rl.entropy).failed == 0
