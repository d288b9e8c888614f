"""The expert as an RL policy: shared-prompt log-probs and gradients, continue_from, entropy-guided rollouts."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from experts.answers import AnswerConstraint, parse_answer
from experts.policy import LMPolicy, answer_values, encode_prompts, forward_logits
from tests.experts.test_answers import _model
from tests.experts.test_decoding import _prompts


@pytest.fixture(scope="module")
def policy(tiny_tokenizer):
    model = _model(tiny_tokenizer, seed=8)
    return LMPolicy(model, tiny_tokenizer, AnswerConstraint(tiny_tokenizer), temperature=1.0)


def _batch(policy, n=5):
    return encode_prompts(policy.tokenizer, _prompts(n))


def _plain_logp(policy, batch, ro) -> torch.Tensor:
    """Log-probs from one full forward of prompt + answer per row (the reference for the shared path)."""
    from experts.policy import _masked

    item = ro.extras["item"]
    ids = torch.cat([batch["input_ids"][item], ro.tokens], -1)
    mask = torch.cat([batch["attention_mask"][item], torch.ones_like(ro.tokens)], -1)
    logits = forward_logits(policy.model, ids, mask, keep=ro.tokens.shape[1] + 1).logits[:, :-1]
    z = _masked(logits.float(), ro.extras["allowed"], policy.temperature)
    logp_all = torch.log_softmax(z, -1)
    pick = (ro.extras["allowed"] == ro.tokens[..., None]).float().argmax(-1, keepdim=True)
    return logp_all.gather(-1, pick).squeeze(-1) * ro.mask


def test_shared_prompt_logprobs_and_gradients_equal_a_plain_forward(policy):
    batch = _batch(policy)
    ro = policy.sample(batch, 4, generator=torch.Generator().manual_seed(0))
    params = list(policy.model.parameters())
    logp, _ = policy.logprobs(batch, ro)
    g_shared = torch.autograd.grad(logp.sum(), params)
    ref = _plain_logp(policy, batch, ro)
    g_plain = torch.autograd.grad(ref.sum(), params)
    assert torch.allclose(logp, ref, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5, rtol=1e-4) for a, b in zip(g_shared, g_plain))
    sub = ro.rows(torch.tensor([7, 2, 3]))  # a micro-batch of rows from several prompts
    assert torch.allclose(policy.logprobs(batch, sub)[0], logp[[7, 2, 3]], atol=1e-5)


def test_rollout_rows_have_one_width_and_parse(policy):
    batch = _batch(policy)
    ro = policy.sample(batch, 8, generator=torch.Generator().manual_seed(1))
    assert ro.tokens.shape == (40, policy.depth) and ro.extras["allowed"].shape == (40, policy.depth, policy.vocab_size)
    assert ro.extras["item"].tolist() == np.repeat(np.arange(5), 8).tolist()
    texts = policy.tokenizer.batch_decode(ro.tokens, skip_special_tokens=True)
    for text, v in zip(texts, answer_values(policy.constraint, ro.tokens).tolist()):
        assert parse_answer(text) == (pytest.approx(v), False)


def test_continue_from_keeps_the_prefix_and_scores_every_position(policy):
    batch = _batch(policy)
    ro = policy.sample(batch, 3, generator=torch.Generator().manual_seed(2))
    lengths = torch.tensor([0, 1, 2, 3, 4] * 3)
    cont = policy.continue_from(batch, ro, lengths, generator=torch.Generator().manual_seed(3))
    assert cont.num_rows == ro.num_rows and cont.group_size == 1
    keep = torch.arange(ro.tokens.shape[1])[None] < lengths[:, None]
    assert torch.equal(cont.tokens[keep], ro.tokens[keep])
    # the kept positions are scored under the same distribution as in the parent rollout
    assert torch.allclose(cont.old_logp[keep], ro.old_logp[keep], atol=1e-5)
    assert torch.allclose(cont.entropy[keep], ro.entropy[keep], atol=1e-5)
    logp, ent = policy.logprobs(batch, cont)
    assert torch.allclose(logp, cont.old_logp, atol=1e-5) and torch.allclose(ent, cont.entropy, atol=1e-5)
    texts = policy.tokenizer.batch_decode(cont.tokens, skip_special_tokens=True)
    assert all(not parse_answer(t)[1] for t in texts)
    fresh = cont.rows(torch.nonzero(lengths == 0).flatten())
    assert fresh.num_rows == 3 and bool((fresh.mask.sum(-1) >= 1).all())


def test_entropy_guided_sampler_drives_the_expert_policy(policy):
    from rl.rollouts import EntropyGuidedSampler

    batch = _batch(policy, 4)
    sampler = EntropyGuidedSampler(policy, branch_probability=1.0)
    a = sampler.sample(batch, 8, generator=torch.Generator().manual_seed(4))
    b = sampler.sample(batch, 8, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a.tokens, b.tokens)  # a function of the generator state
    assert a.num_rows == 32 and a.group_size == 8
    assert a.extras["item"].tolist() == np.repeat(np.arange(4), 8).tolist()  # item-major, contiguous groups
    assert int((a.extras["branch_parent"] >= 0).sum()) > 0  # some rows branched from earlier samples
    par, pos = a.extras["branch_parent"], a.extras["branch_pos"]
    for r in torch.nonzero(par >= 0).flatten().tolist():  # a branch shares its parent's tokens before t*
        p, t = int(par[r]), int(pos[r])
        assert torch.equal(a.tokens[r, :t], a.tokens[p, :t]) and a.extras["item"][r] == a.extras["item"][p]
    logp, _ = policy.logprobs(batch, a)
    assert torch.allclose(logp, a.old_logp, atol=1e-5)


def test_rl_with_entropy_guided_rollouts_on_held_out_rows(tmp_path, tiny_tokenizer):
    from experts.data import SPLITS, build_dataset
    from experts.training import TrainConfig, train_rl, train_sft
    from tests.experts.test_training import SPEC, _sft_cfg

    data = build_dataset("trend", SPEC, end=None, rl_fraction=0.3)
    assert set(np.unique(data.split)) == set(SPLITS.values())
    t_sft, t_rl, t_val = (data.t[data.split == SPLITS[k]] for k in ("sft", "rl", "val"))
    assert t_sft.max() + 5 < t_rl.min() and t_rl.max() + 5 < t_val.min()  # purged by H = 5 bars
    train_sft(_sft_cfg(steps=2, rl_fraction=0.3), tmp_path / "sft", tokenizer=tiny_tokenizer)
    cfg = TrainConfig(style="trend", stage="rl", data=SPEC, end=None, steps=2, batch_size=4, group_size=4,
                      val_size=16, model=str(tmp_path / "sft"), optimizer="clip_cov", lr=1e-3,
                      rollouts="entropy-guided", rl_fraction=0.3, save_every=0)
    out = train_rl(cfg, tmp_path / "rl", eval_every=1)
    lines = [json.loads(x) for x in (tmp_path / "rl" / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 2 and all("rollout/branch_frac" in x for x in lines)
    val = [json.loads(x) for x in (tmp_path / "rl" / "validation.jsonl").read_text().splitlines()]
    assert [v["step"] for v in val] == [0, 1] and val[0]["val/reward"] == out["before/val/reward"]
