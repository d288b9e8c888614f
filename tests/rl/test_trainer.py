"""rl.trainer.GRPOTrainer on the toy policies: determinism, resume, micro-batching, guards, metrics."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch

from rl.policy import Policy, Rollouts
from rl.toy import BanditTask, LinearSoftmaxPolicy, TabularSoftmaxPolicy, context_batches, make_bandit
from rl.trainer import WALL_CLOCK_KEYS, GRPOTrainer, TrainerConfig, _cov_stats

REQUIRED_KEYS = {
    "step",
    "reward/mean",
    "reward/std",
    "entropy",
    "entropy/change",
    "clipfrac_low",
    "clipfrac_high",
    "approx_kl",
    "cov/mean",
    "grad_norm",
    "tokens_per_s",
    "skipped_steps",
    "loss",
    "pg_loss",
}


def _group_adv(scores: torch.Tensor, n: int) -> torch.Tensor:
    """Test-local group-normalised advantage (keeps these tests independent of rl.advantages)."""
    g = scores.reshape(-1, n)  # (B, n)
    return ((g - g.mean(1, keepdim=True)) / (g.std(1, keepdim=True) + 1e-6)).reshape(-1)


def _seq_task(n_contexts=3, k=6, seed=0) -> BanditTask:
    return make_bandit(k, n_contexts=n_contexts, n_good=2, seed=seed)


def _trainer(tmp_path, name="run", *, policy=None, steps=4, resume=False, adv=_group_adv, **cfg):
    policy = policy or TabularSoftmaxPolicy(6, n_contexts=3, seq_len=4, eos_token=0)
    base = {
        "steps": steps,
        "batch_size": 3,
        "group_size": 4,
        "lr": 0.05,
        "optimizer": "adam",
        "weight_decay": 0.0,
        "ppo_epochs": 2,
        "num_minibatches": 2,
        "micro_batch_size": 5,
        "seed": 7,
    }
    base.update(cfg)
    return GRPOTrainer(
        policy,
        _seq_task(),
        context_batches(3, base["batch_size"]),
        TrainerConfig(**base),
        run_dir=tmp_path / name,
        advantage_fn=adv,
        resume=resume,
    )


def _read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _strip(lines):
    return [{k: v for k, v in ln.items() if k not in WALL_CLOCK_KEYS} for ln in lines]


def test_toy_policies_satisfy_protocol():
    assert isinstance(TabularSoftmaxPolicy(3), Policy)
    assert isinstance(LinearSoftmaxPolicy(torch.zeros(2, 3), 4), Policy)


def test_metrics_stream_and_config(tmp_path):
    tr = _trainer(tmp_path, steps=3)
    returned = tr.train()
    lines = _read(tmp_path / "run" / "metrics.jsonl")
    assert len(lines) == 3 * 2 * 2 == len(returned)  # steps * ppo_epochs * num_minibatches
    assert [ln["step"] for ln in lines] == list(range(1, 13))
    assert REQUIRED_KEYS <= set(lines[0])
    assert lines[0]["entropy/change"] is None
    assert lines[1]["entropy/change"] == pytest.approx(lines[1]["entropy"] - lines[0]["entropy"])
    # first update of the first rollout is on-policy: ratio 1, entropy equals the rollout entropy
    assert lines[0]["ratio_mean"] == pytest.approx(1.0, abs=1e-6)
    assert lines[0]["approx_kl"] == pytest.approx(0.0, abs=1e-6)
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["loss"] == "vanilla" and cfg["steps"] == 3 and cfg["micro_batch_size"] == 5
    assert (tmp_path / "run" / "checkpoints" / "latest.json").exists()


def test_same_seed_same_metrics_bit_for_bit(tmp_path):
    a, b = _trainer(tmp_path, "a"), _trainer(tmp_path, "b")
    la, lb = a.train(), b.train()
    assert _strip(la) == _strip(lb)
    assert torch.equal(a.policy.logits, b.policy.logits)
    c = _trainer(tmp_path, "c", seed=8)
    assert _strip(c.train()) != _strip(la)


def test_resume_equals_uninterrupted(tmp_path):
    full = _trainer(tmp_path, "full", steps=6)
    full.train()
    part = _trainer(tmp_path, "part", steps=3)
    part.train()
    # a fresh policy object and trainer continue from the checkpoint
    resumed = _trainer(tmp_path, "part", steps=6, resume=True)
    assert resumed.rollout_step == 3 and resumed.opt_step == 12
    assert torch.equal(resumed.policy.logits, part.policy.logits)
    resumed.train()
    assert _strip(_read(tmp_path / "part" / "metrics.jsonl")) == _strip(
        _read(tmp_path / "full" / "metrics.jsonl")
    )
    assert torch.equal(resumed.policy.logits, full.policy.logits)
    assert not list((tmp_path / "part").rglob("*.pt")) and not list((tmp_path / "part").rglob("*.pkl"))


def test_resume_truncates_metrics_written_after_the_checkpoint(tmp_path):
    tr = _trainer(tmp_path, steps=2, save_every=1)
    tr.train()
    tr.step()  # rollout 3, not checkpointed
    assert len(_read(tmp_path / "run" / "metrics.jsonl")) == 12
    again = _trainer(tmp_path, steps=3, save_every=1, resume=True)
    assert again.rollout_step == 2 and len(_read(tmp_path / "run" / "metrics.jsonl")) == 8


def test_resume_with_other_config_fails(tmp_path):
    _trainer(tmp_path, steps=1).train()
    with pytest.raises(ValueError, match="lr"):
        _trainer(tmp_path, steps=2, resume=True, lr=0.5)


@pytest.mark.parametrize(
    "agg", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"]
)
def test_micro_batching_equals_full_batch(tmp_path, agg):
    """Gradient accumulation over micro-batches of 1, 2, 5 rows gives the same SGD update as one batch
    (variable-length rows from the eos token make the token weights matter)."""
    results = []
    for micro in (None, 1, 2, 5):
        pol = TabularSoftmaxPolicy(
            6, n_contexts=3, seq_len=4, eos_token=0, init_logits=torch.linspace(-1, 1, 6)
        )
        tr = _trainer(
            tmp_path,
            f"m{micro}-{agg}",
            policy=pol,
            steps=1,
            micro_batch_size=micro,
            optimizer="sgd",
            lr=0.5,
            ppo_epochs=1,
            num_minibatches=1,
            max_grad_norm=None,
            loss_cfg={"agg": agg},
        )
        line = tr.train()[0]
        results.append((pol.logits.detach().clone(), line))
    masks = [ln["response_length/mean"] for _, ln in results]
    assert masks[0] < 4.0  # some rows really are padded
    ref_params, ref_line = results[0]
    assert not torch.equal(
        ref_params,
        TabularSoftmaxPolicy(6, n_contexts=3, seq_len=4, init_logits=torch.linspace(-1, 1, 6)).logits,
    )
    for params, line in results[1:]:
        assert torch.allclose(params, ref_params, atol=1e-6)
        assert line["grad_norm"] == pytest.approx(ref_line["grad_norm"], rel=1e-5)
        assert line["pg_loss"] == pytest.approx(ref_line["pg_loss"], abs=1e-6)
        # metrics are averaged over micro-batches (not summed, even where the loss terms add up)
        assert line["ratio_mean"] == pytest.approx(1.0, abs=1e-6)
        assert line["clipfrac_low"] == pytest.approx(ref_line["clipfrac_low"], abs=1e-9)


def test_nan_rewards_skip_the_step(tmp_path):
    task = _seq_task()
    calls = {"n": 0}

    def reward(batch, ro):
        calls["n"] += 1
        s = task(batch, ro)
        return s * float("nan") if calls["n"] == 2 else s

    pol = TabularSoftmaxPolicy(6, n_contexts=3, seq_len=4, eos_token=0)
    cfg = TrainerConfig(steps=3, batch_size=3, group_size=4, lr=0.05, ppo_epochs=1, seed=1)
    tr = GRPOTrainer(
        pol, reward, context_batches(3, 3), cfg, run_dir=tmp_path / "nan", advantage_fn=_group_adv
    )
    tr.step()
    before = pol.logits.detach().clone()
    line = tr.step()[0]
    assert line["skipped_steps"] == 1 and line["entropy"] is None or math.isnan(line["entropy"])
    assert torch.equal(pol.logits, before)  # no update from the NaN step
    line = tr.step()[0]
    assert line["skipped_steps"] == 1 and not torch.equal(pol.logits, before)
    written = _read(tmp_path / "nan" / "metrics.jsonl")
    assert written[1]["entropy"] is None  # non-finite values are written as JSON null


def test_kl_to_reference(tmp_path):
    pol = TabularSoftmaxPolicy(6, n_contexts=3, seq_len=4, eos_token=0)
    with pytest.raises(ValueError, match="ref_policy"):
        GRPOTrainer(
            pol,
            _seq_task(),
            context_batches(3, 3),
            TrainerConfig(kl_coef=0.1, batch_size=3),
            run_dir=tmp_path / "x",
            advantage_fn=_group_adv,
        )
    ref = copy.deepcopy(pol)
    cfg = TrainerConfig(steps=3, batch_size=3, group_size=4, lr=0.2, kl_coef=0.5, kl_type="k3", seed=2)
    tr = GRPOTrainer(
        pol,
        _seq_task(),
        context_batches(3, 3),
        cfg,
        run_dir=tmp_path / "kl",
        ref_policy=ref,
        advantage_fn=_group_adv,
    )
    lines = tr.train()
    assert lines[0]["kl"] == pytest.approx(0.0, abs=1e-7)  # identical policies before the first update
    assert lines[-1]["kl"] > 1e-5


def test_entropy_bonus_gradient(tmp_path):
    """With zero advantages the only gradient is -entropy_coef * d mean(H) / dz: one SGD step must equal
    z + lr * coef * dH/dz computed by autograd on the uniform-free start point."""
    init = torch.tensor([0.5, -0.3, 0.0, 1.0])
    pol = TabularSoftmaxPolicy(4, init_logits=init)
    cfg = TrainerConfig(
        steps=1,
        batch_size=2,
        group_size=3,
        lr=0.1,
        optimizer="sgd",
        weight_decay=0.0,
        entropy_coef=0.2,
        max_grad_norm=None,
    )
    tr = GRPOTrainer(
        pol,
        lambda b, ro: torch.zeros(ro.num_rows),
        context_batches(1, 2),
        cfg,
        run_dir=tmp_path / "ent",
        advantage_fn=lambda s, n: torch.zeros_like(s),
    )
    tr.train()
    z = init.clone().requires_grad_()
    h = -(torch.softmax(z, -1) * torch.log_softmax(z, -1)).sum()  # every token has the same context
    (dh,) = torch.autograd.grad(h, z)
    assert torch.allclose(pol.logits.detach()[0, 0], init + 0.1 * 0.2 * dh, atol=1e-6)


def test_linear_policy_with_fused_kernel_learns_contextual_bandit(tmp_path):
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(5, 8, generator=g)
    task = make_bandit(10, n_contexts=5, n_good=1, seed=3)
    pol = LinearSoftmaxPolicy(feats, 10, chunk_size=7)
    start = task.expected_reward(torch.softmax(feats @ pol.weight.detach().T, -1))
    cfg = TrainerConfig(
        steps=40, batch_size=8, group_size=8, lr=0.1, optimizer="adam", weight_decay=0.0, seed=0
    )
    GRPOTrainer(
        pol, task, context_batches(5, 8), cfg, run_dir=tmp_path / "lin", advantage_fn=_group_adv
    ).train()
    end = task.expected_reward(torch.softmax(feats @ pol.weight.detach().T, -1))
    assert end > start + 0.3 and end > 0.85, (start, end)


def test_bf16_autocast_runs_and_stays_finite(tmp_path):
    feats = torch.randn(4, 16, generator=torch.Generator().manual_seed(1))
    pol = LinearSoftmaxPolicy(feats, 12)
    cfg = TrainerConfig(steps=2, batch_size=4, group_size=4, lr=0.05, bf16=True)
    lines = GRPOTrainer(
        pol,
        make_bandit(12, n_contexts=4),
        context_batches(4, 4),
        cfg,
        run_dir=tmp_path / "bf",
        advantage_fn=_group_adv,
    ).train()
    assert all(math.isfinite(ln["loss"]) and ln["skipped_steps"] == 0 for ln in lines)


def test_policy_without_generator_keyword_uses_seeded_global_rng(tmp_path):
    class NoGen(TabularSoftmaxPolicy):
        def sample(self, batch, n):  # the minimal protocol signature
            return super().sample(batch, n)

    runs = []
    for name in ("a", "b"):
        pol = NoGen(5, n_contexts=2)
        cfg = TrainerConfig(steps=2, batch_size=2, group_size=4, lr=0.1, seed=3)
        runs.append(
            _strip(
                GRPOTrainer(
                    pol,
                    make_bandit(5, n_contexts=2, n_good=1),
                    context_batches(2, 2),
                    cfg,
                    run_dir=tmp_path / name,
                    advantage_fn=_group_adv,
                ).train()
            )
        )
    assert runs[0] == runs[1]


def test_default_advantage_is_rl_advantages_grpo(tmp_path):
    tr = _trainer(tmp_path, steps=1, adv=None)
    scores = torch.tensor([1.0, 0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 2.0])
    got = tr.advantage_fn(scores, 4)
    # group 1: mean 0.25, unbiased std = sqrt(((0.75)^2 + 3*(0.25)^2)/3) = 0.5 -> (1.5, -0.5, -0.5, -0.5)
    # group 2: all equal -> 0
    assert torch.allclose(got, torch.tensor([1.5, -0.5, -0.5, -0.5, 0.0, 0.0, 0.0, 0.0]), atol=1e-5)
    tr.train()


def test_bad_inputs_fail_fast(tmp_path):
    with pytest.raises(ValueError, match="num_minibatches"):
        TrainerConfig(batch_size=3, group_size=3, num_minibatches=2)
    with pytest.raises(ValueError, match="JSON"):
        TrainerConfig(loss_cfg={"x": object()})
    with pytest.raises(KeyError, match="registered"):
        _trainer(tmp_path, loss="no_such_loss")
    tr = GRPOTrainer(
        TabularSoftmaxPolicy(3),
        lambda b, ro: torch.zeros(3),
        context_batches(1, 2),
        TrainerConfig(batch_size=2, group_size=2),
        run_dir=tmp_path / "bad",
        advantage_fn=_group_adv,
    )
    with pytest.raises(ValueError, match=r"expected \(4,\)"):
        tr.step()
    with pytest.raises(ValueError, match="group_size"):
        Rollouts(torch.zeros(3, 1), torch.ones(3, 1), torch.zeros(3, 1), torch.zeros(3, 1), group_size=2)


def test_cov_stats_hand_computed():
    # valid tokens: A = (1, 1, -1), lp = (-1, -2, -3); means 1/3 and -2
    # cov = (2/3 * 1, 2/3 * 0, -4/3 * -1) = (2/3, 0, 4/3): mean 2/3, max 4/3, min 0
    adv = torch.tensor([[1.0, 1.0], [-1.0, 5.0]])
    lp = torch.tensor([[-1.0, -2.0], [-3.0, 9.0]])
    m = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    s = _cov_stats(adv, lp, m)
    assert s["cov/mean"] == pytest.approx(2 / 3) and s["cov/max"] == pytest.approx(4 / 3)
    assert s["cov/min"] == pytest.approx(0.0)
    assert s["cov/std"] == pytest.approx(math.sqrt(((0) ** 2 + (2 / 3) ** 2 + (2 / 3) ** 2) / 3))
