"""rl.checkpoint through GRPOTrainer: parameters by name, format-1 checkpoints still load, the checkpoint swap
survives a crash at every step, metric appends never corrupt earlier lines, named weights for inference."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch
from torch import nn

from rl import checkpoint as ckpt
from rl.policy import Rollouts
from rl.toy import LinearSoftmaxPolicy, TabularSoftmaxPolicy, context_batches, make_bandit
from rl.trainer import WALL_CLOCK_KEYS, GRPOTrainer, TrainerConfig


def _trainer(tmp_path, name="run", *, policy=None, steps=4, resume=False, **cfg):
    base = {
        "steps": steps,
        "batch_size": 3,
        "group_size": 4,
        "lr": 0.05,
        "optimizer": "adam",
        "weight_decay": 0.0,
        "num_minibatches": 2,
        "micro_batch_size": 5,
        "seed": 5,
    }
    base.update(cfg)
    return GRPOTrainer(
        policy or TabularSoftmaxPolicy(6, n_contexts=3, seq_len=4, eos_token=0),
        make_bandit(6, n_contexts=3, n_good=2, seed=0),
        context_batches(3, base["batch_size"]),
        TrainerConfig(**base),
        run_dir=tmp_path / name,
        resume=resume,
    )


def _read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _strip(lines):
    return [{k: v for k, v in ln.items() if k not in WALL_CLOCK_KEYS} for ln in lines]


def _root(tmp_path, name="run"):
    return tmp_path / name / "checkpoints"


class _Nameless:
    """A policy without named_parameters / state_dict: checkpoints fall back to positions."""

    def __init__(self):
        self.inner = TabularSoftmaxPolicy(6, n_contexts=3, seq_len=4, eos_token=0)

    def sample(self, batch, n, *, generator=None) -> Rollouts:
        return self.inner.sample(batch, n, generator=generator)

    def logprobs(self, batch, rollouts):
        return self.inner.logprobs(batch, rollouts)

    def parameters(self):
        return self.inner.parameters()


def test_parameters_are_stored_by_name(tmp_path):
    tr = _trainer(tmp_path, steps=1)
    tr.train()
    tensors, state = ckpt.read_checkpoint(ckpt.latest_checkpoint(_root(tmp_path)))
    assert state["format"] == 2 and state["param_names"] == ["logits"]
    assert torch.equal(tensors["param.logits"], tr.policy.logits.detach())
    assert {"opt.logits.exp_avg", "opt.logits.exp_avg_sq"} <= set(tensors)
    assert float(tensors["opt.logits.step"]) == 2.0  # 2 minibatches = 2 optimizer steps
    nameless = _trainer(tmp_path, "nameless", policy=_Nameless(), steps=1)
    nameless.train()
    tensors, state = ckpt.read_checkpoint(ckpt.latest_checkpoint(_root(tmp_path, "nameless")))
    assert state["param_names"] == ["0"] and "param.0" in tensors


def test_loading_other_parameter_names_fails_with_the_names(tmp_path):
    _trainer(tmp_path, steps=1).train()

    class Renamed(TabularSoftmaxPolicy):
        def named_parameters(self, *a, **k):
            return [("head.logits", self.logits)]

    with pytest.raises(ValueError, match=r"missing: \['head.logits'\]; unexpected: \['logits'\]"):
        _trainer(tmp_path, steps=2, resume=True, policy=Renamed(6, n_contexts=3, seq_len=4, eos_token=0))


def _save_format1(tr: GRPOTrainer) -> None:
    """Rewrite ``tr``'s checkpoint the way the trainer wrote it before names (format 1, by position)."""
    from safetensors.torch import save_file

    root = tr.run_dir / "checkpoints"
    shutil.rmtree(root)
    path = root / f"step-{tr.rollout_step:08d}"
    path.mkdir(parents=True)
    tensors = {f"param.{i}": p.detach().cpu().contiguous() for i, p in enumerate(tr.params)}
    tensors["rng.sample"] = tr.gen.get_state()
    tensors["rng.loss"] = tr.loss_gen.get_state()
    tensors["rng.global"] = torch.get_rng_state()
    opt = tr.optimizer.state_dict()
    scalars: dict = {}
    for pid, st in opt["state"].items():
        for name, val in st.items():
            if isinstance(val, torch.Tensor):
                tensors[f"opt.{pid}.{name}"] = val.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[name] = val
    save_file(tensors, str(path / "tensors.safetensors"))
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in opt["param_groups"]]
    state = {
        "format": 1,
        "rollout_step": tr.rollout_step,
        "opt_step": tr.opt_step,
        "skipped_steps": tr.skipped_steps,
        "prev_entropy": tr.prev_entropy,
        "loss_state": {"siren_anchor": None, "epo_hist_sum": 0.0, "epo_hist_count": 0},
        "optimizer_param_groups": groups,
        "optimizer_scalars": scalars,
        "config": tr.config.to_dict(),
    }
    (path / "state.json").write_text(json.dumps(state, indent=2) + "\n")
    (root / "latest.json").write_text(json.dumps({"path": path.name}) + "\n")


def test_format1_checkpoint_resumes_exactly(tmp_path):
    full = _trainer(tmp_path, "full", steps=4)
    full.train()
    part = _trainer(tmp_path, "part", steps=4)
    part.train(steps=2)
    _save_format1(part)
    resumed = _trainer(tmp_path, "part", steps=4, resume=True)  # a fresh policy object
    assert resumed.rollout_step == 2 and torch.equal(resumed.policy.logits, part.policy.logits)
    resumed.train()
    assert torch.equal(resumed.policy.logits, full.policy.logits)
    assert _strip(_read(tmp_path / "part" / "metrics.jsonl")) == _strip(_read(tmp_path / "full" / "metrics.jsonl"))
    # the next save writes format 2 and keeps the format-1 directory as the previous checkpoint
    names = sorted(p.name for p in _root(tmp_path, "part").iterdir() if p.is_dir())
    assert names[0] == "step-00000002" and names[1].startswith("step-00000004-") and len(names) == 2


def _assert_latest_is_complete(root, rollout):
    latest = ckpt.latest_checkpoint(root)
    assert latest is not None and latest.is_dir()
    _, state = ckpt.read_checkpoint(latest)  # both files present and readable
    assert state["rollout_step"] == rollout


def _crash_at(monkeypatch, where: str):
    """Make the checkpoint writer fail at one step: 'tensors' (writing the safetensors file), 'rename' (moving
    the finished directory in place) or 'pointer' (replacing latest.json)."""
    if where == "tensors":
        import safetensors.torch

        def boom(*a, **k):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(safetensors.torch, "save_file", boom)
        return
    real = os.replace

    def replace(src, dst):
        is_pointer = str(dst).endswith("latest.json")
        if (where == "pointer" and is_pointer) or (where == "rename" and not is_pointer and os.path.isdir(src)):
            raise OSError(5, "simulated crash")
        return real(src, dst)

    monkeypatch.setattr(ckpt.os, "replace", replace)


@pytest.mark.parametrize("where", ["tensors", "rename", "pointer"])
def test_checkpoint_swap_survives_a_crash(tmp_path, monkeypatch, where):
    tr = _trainer(tmp_path, steps=4, save_every=1)
    tr.train(steps=2)
    root = _root(tmp_path)
    _assert_latest_is_complete(root, 2)
    tr.step()
    with monkeypatch.context() as m:
        _crash_at(m, where)
        with pytest.raises(OSError):
            tr.save_checkpoint()
    _assert_latest_is_complete(root, 2)  # the pointer still names the old, intact checkpoint
    resumed = _trainer(tmp_path, steps=4, save_every=1, resume=True)
    assert resumed.rollout_step == 2 and len(_read(tmp_path / "run" / "metrics.jsonl")) == 2 * 2
    resumed.train()  # later saves clean up what the crash left behind
    _assert_latest_is_complete(root, 4)
    assert sorted(p.name[:13] for p in root.iterdir() if p.is_dir()) == ["step-00000003", "step-00000004"]


def test_metrics_lines_survive_a_torn_append(tmp_path):
    tr = _trainer(tmp_path, steps=2, save_every=1)
    tr.train()
    path = tmp_path / "run" / "metrics.jsonl"
    with path.open("a") as f:
        f.write('{"step": 5, "reward/me')  # a crash in the middle of a line
    resumed = _trainer(tmp_path, steps=3, save_every=1, resume=True)
    resumed.train()
    lines = _read(path)  # every line parses
    assert [ln["step"] for ln in lines] == list(range(1, 7))


def test_policy_state_dict_and_export(tmp_path):
    feats = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    pol = LinearSoftmaxPolicy(feats, 5)
    tr = GRPOTrainer(
        pol,
        make_bandit(5, n_contexts=3, seed=0),
        context_batches(3, 2),
        TrainerConfig(steps=1, batch_size=2, group_size=2, lr=0.5, optimizer="sgd"),
        run_dir=tmp_path / "lin",
    )
    tr.train()
    sd = tr.policy_state_dict()
    assert set(sd) == {"features", "weight"} == set(pol.state_dict())  # the module's own keys, buffers too
    assert all(v.device.type == "cpu" for v in sd.values()) and torch.equal(sd["weight"], pol.weight.detach())
    with torch.no_grad():
        pol.weight.add_(1.0)
    assert not torch.equal(sd["weight"], pol.weight.detach())  # a copy, not a view of the live weights
    out = tr.export_policy(tmp_path / "export")
    weights, meta = ckpt.load_exported_policy(out)
    assert torch.equal(weights["weight"], pol.weight.detach()) and meta["rollout_step"] == 1 and meta["opt_step"] == 1
    fresh = LinearSoftmaxPolicy(feats, 5)
    fresh.load_state_dict(weights)
    assert torch.equal(fresh.weight, pol.weight)
    (out / "model.safetensors").write_bytes((out / "model.safetensors").read_bytes()[:-8])  # torn pair
    with pytest.raises(ValueError, match="interrupted"):
        ckpt.load_exported_policy(out)


def test_wrapper_policy_exports_its_models_state_dict(tmp_path):
    class Wrapper:
        """A policy around a model: state_dict() returns the model's, so names match an inference engine."""

        def __init__(self):
            self.model = nn.Linear(3, 4)
            self.inner = TabularSoftmaxPolicy(4)

        def sample(self, batch, n, *, generator=None):
            return self.inner.sample(batch, n, generator=generator)

        def logprobs(self, batch, rollouts):
            lp, ent = self.inner.logprobs(batch, rollouts)
            return lp + 0.0 * self.model.weight.sum(), ent

        def parameters(self):
            return [*self.inner.parameters(), *self.model.parameters()]

        def state_dict(self):
            return self.model.state_dict()

    w = Wrapper()
    tr = GRPOTrainer(
        w, make_bandit(4), context_batches(1, 2), TrainerConfig(steps=1, batch_size=2, group_size=2),
        run_dir=tmp_path / "w",
    )
    assert set(tr.policy_state_dict()) == {"weight", "bias"}
    assert [n for n, _ in tr.named_params] == ["0", "1", "2"]  # no named_parameters: by position
