"""GRPOTrainer with EVERY registered policy loss: the inputs each needs (logits, tokens, entropy, generator) and
the state some keep across steps (SIREN anchor, EPO history and phase) through checkpoints."""

from __future__ import annotations

import json
import math

import pytest
import torch

from rl.entropy import entropy_from_logits, logprobs_from_logits
from rl.losses import POLICY_LOSSES, policy_loss
from rl.policy import LogitsPolicy, Rollouts
from rl.toy import LinearSoftmaxPolicy, TabularSoftmaxPolicy, context_batches, make_bandit
from rl.trainer import WALL_CLOCK_KEYS, GRPOTrainer, TrainerConfig, loss_inputs, needs_logits

K, C, T = 5, 2, 3  # actions, contexts, tokens per rollout


def _policy() -> TabularSoftmaxPolicy:
    init = torch.randn(C, T, K, generator=torch.Generator().manual_seed(3))
    return TabularSoftmaxPolicy(K, n_contexts=C, seq_len=T, eos_token=0, init_logits=init)


def _trainer(tmp_path, name, loss, *, policy=None, steps=3, resume=False, **cfg):
    base = {
        "steps": steps,
        "batch_size": 2,
        "group_size": 4,
        "num_minibatches": 2,
        "micro_batch_size": 3,
        "loss": loss,
        "optimizer": "adam",
        "lr": 0.1,
        "weight_decay": 0.0,
        "seed": 11,
    }
    base.update(cfg)
    return GRPOTrainer(
        policy or _policy(),
        make_bandit(K, n_contexts=C, n_good=2, seed=1),
        context_batches(C, base["batch_size"]),
        TrainerConfig(**base),
        run_dir=tmp_path / name,
        resume=resume,
    )


def _read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _strip(lines):
    return [{k: v for k, v in ln.items() if k not in WALL_CLOCK_KEYS} for ln in lines]


def _direct_metric_keys(name: str) -> set[str]:
    """The metric keys ``name`` reports when called directly (the trainer must log all of them)."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(4, T, K, generator=g, requires_grad=True)
    tokens = torch.randint(0, K, (4, T), generator=g)
    logp = logprobs_from_logits(z, tokens)
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5])[:, None].expand(4, T)
    kw = {"entropy": entropy_from_logits(z), "generator": torch.Generator().manual_seed(1)}
    if needs_logits(name):
        kw["logits"] = z
    if "tokens" in loss_inputs(name):
        kw["tokens"] = tokens
    _, metrics = policy_loss(name, logp, logp.detach() + 0.1, adv, torch.ones(4, T), **kw)
    return set(metrics)


@pytest.mark.parametrize("loss", sorted(POLICY_LOSSES))
def test_every_loss_trains_through_the_trainer(tmp_path, loss):
    pol = _policy()
    before = pol.logits.detach().clone()
    tr = _trainer(tmp_path, "a", loss, policy=pol)
    lines = tr.train()
    assert len(lines) == 3 * 2
    for ln in lines:
        assert math.isfinite(ln["loss"]) and ln["skipped_steps"] == 0, ln
    assert not torch.equal(pol.logits.detach(), before)  # the parameters moved
    written = _read(tmp_path / "a" / "metrics.jsonl")
    own = _direct_metric_keys(loss)
    assert own <= set(written[0]), own - set(written[0])
    assert all(all(k in ln for k in own) for ln in written)
    again = _trainer(tmp_path, "b", loss).train()  # same seed, fresh policy => the same metrics
    assert _strip(again) == _strip(lines)


def test_needs_logits_follows_the_loss_signatures():
    assert needs_logits("siren") and needs_logits("lp_reg")
    assert not needs_logits("epo")  # takes entropy (with grad); logits only as a fallback
    assert not needs_logits("vanilla") and not needs_logits("clip_cov")
    assert "tokens" in loss_inputs("lp_reg") and "generator" in loss_inputs("clip_cov")


def test_toy_logits_agree_with_logprobs():
    pol = _policy()
    ro = pol.sample(torch.tensor([0, 1]), 3, generator=torch.Generator().manual_seed(0))
    z = pol.token_logits(None, ro)
    lp, ent = pol.logprobs(None, ro)
    assert z.shape == (6, T, K) and z.requires_grad
    assert torch.allclose(logprobs_from_logits(z, ro.tokens), lp) and torch.allclose(entropy_from_logits(z), ent)
    lin = LinearSoftmaxPolicy(torch.randn(3, 4, generator=torch.Generator().manual_seed(1)), K, temperature=0.7)
    with torch.no_grad():
        lin.weight.normal_(generator=torch.Generator().manual_seed(2))
    ro = lin.sample(torch.tensor([0, 2]), 2, generator=torch.Generator().manual_seed(0))
    z = lin.token_logits(None, ro)
    lp, ent = lin.logprobs(None, ro)
    assert isinstance(lin, LogitsPolicy) and z.shape == (4, 1, K)
    assert torch.allclose(logprobs_from_logits(z, ro.tokens), lp, atol=1e-6)
    assert torch.allclose(entropy_from_logits(z), ent, atol=1e-6)


class _NoLogits:
    """A policy offering only logprobs (no token_logits)."""

    def __init__(self):
        self.inner = _policy()

    def sample(self, batch, n, *, generator=None) -> Rollouts:
        return self.inner.sample(batch, n, generator=generator)

    def logprobs(self, batch, rollouts):
        return self.inner.logprobs(batch, rollouts)

    def parameters(self):
        return self.inner.parameters()


@pytest.mark.parametrize("loss", ["siren", "lp_reg"])
def test_logits_loss_without_token_logits_fails_fast(tmp_path, loss):
    with pytest.raises(TypeError, match="token_logits"):
        _trainer(tmp_path, "x", loss, policy=_NoLogits())
    _trainer(tmp_path, "y", "epo", policy=_NoLogits()).train()  # epo needs only entropy


def test_siren_anchor_is_kept_from_the_first_step(tmp_path):
    tr = _trainer(tmp_path, "s", "siren", loss_cfg={"siren_coef": 1.0})
    lines = tr.train()
    anchor = lines[0]["siren/anchor"]
    assert tr.loss_state["siren_anchor"] == anchor
    assert lines[0]["siren/penalty"] == 0.0  # anchored on itself
    assert all(ln["siren/anchor"] == pytest.approx(anchor, abs=1e-6) for ln in lines[1:])
    assert any(ln["siren/penalty"] > 0 for ln in lines[1:])
    # an explicit anchor in loss_cfg wins and is not replaced
    fixed = _trainer(tmp_path, "f", "siren", loss_cfg={"siren_anchor": 0.3})
    assert all(ln["siren/anchor"] == pytest.approx(0.3) for ln in fixed.train())
    assert fixed.loss_state["siren_anchor"] is None


def test_epo_history_and_phase(tmp_path):
    tr = _trainer(tmp_path, "e", "epo", steps=4, num_minibatches=1, loss_cfg={"epo_coef": 0.1})
    lines = tr.train()  # one line per rollout
    ent = [ln["entropy/rollout"] for ln in lines]
    assert lines[0]["epo/hist_entropy"] is None and lines[0]["epo/penalty"] == 0.0
    for i in range(1, 4):  # cumulative mean of the earlier rollouts' entropies
        assert lines[i]["epo/hist_entropy"] == pytest.approx(sum(ent[:i]) / i, rel=1e-12)
    assert [ln["epo/phase"] for ln in lines] == [0.0, 0.25, 0.5, 0.75]
    assert [ln["epo/active"] for ln in lines] == [0.0, 0.0, 1.0, 1.0]  # epo_phase_start 0.5
    assert tr.loss_state["epo_hist_count"] == 4


@pytest.mark.parametrize(
    "loss,cfg", [("siren", {"siren_coef": 1.0}), ("epo", {"epo_coef": 0.1, "epo_low_ratio": 0.95})]
)
def test_resume_equals_uninterrupted_with_loss_state(tmp_path, loss, cfg):
    full = _trainer(tmp_path, "full", loss, steps=4, loss_cfg=cfg)
    full.train()
    part = _trainer(tmp_path, "part", loss, steps=4, loss_cfg=cfg)
    part.train(steps=2)
    resumed = _trainer(tmp_path, "part", loss, steps=4, loss_cfg=cfg, resume=True)
    assert resumed.loss_state == part.loss_state and resumed.rollout_step == 2
    resumed.train()
    assert resumed.loss_state == full.loss_state
    got, want = _read(tmp_path / "part" / "metrics.jsonl"), _read(tmp_path / "full" / "metrics.jsonl")
    assert _strip(got) == _strip(want)
    if loss == "epo":  # the penalty really acted, so a lost history would have shown
        assert any(ln["epo/penalty"] > 0 for ln in want)
