"""rl.losses.state: a loss registered with a LossState gets its inputs from the trainer through the generic
hooks (no loss named in the trainer), in the documented order, and the state survives a checkpoint."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from rl.losses import LOSS_STATES, POLICY_LOSSES, LossState, register_policy_loss
from rl.losses.ppo import vanilla
from rl.losses.regularizers import EpoHistory, SirenAnchor
from rl.losses.state import metric_name
from rl.toy import TabularSoftmaxPolicy, context_batches, make_bandit
from rl.trainer import GRPOTrainer, TrainerConfig

CALLS: list[tuple] = []


class _Counter(LossState):
    """Counts applied optimizer steps and rollouts; feeds both to the loss."""

    def __init__(self, *, loss_cfg: Mapping[str, Any], steps: int) -> None:
        super().__init__(loss_cfg=loss_cfg, steps=steps)
        self.updates = 0
        self.rewards: list[float] = []

    def rollout_inputs(self, rollout: int) -> dict[str, Any]:
        CALLS.append(("rollout_inputs", rollout))
        return {"counter_rollout": rollout, "counter_seen": len(self.rewards)}

    def observe_rollout(self, metrics: Mapping[str, Any]) -> None:
        CALLS.append(("observe_rollout", metrics["rollout"]))
        self.rewards.append(metrics["reward/mean"])

    def update_inputs(self) -> dict[str, Any]:
        return {"counter_updates": self.updates}

    def observe_update(self, metrics: Mapping[str, Any], *, applied: bool) -> None:
        if "counter_updates" not in self.loss_cfg:
            assert metrics["counter/updates"] == self.updates  # the loss got what update_inputs gave
        self.updates += int(applied)

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "rewards": list(self.rewards)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.updates, self.rewards = state["updates"], list(state["rewards"])


def _counter_loss(logp, old_logp, advantages, mask, *, counter_updates=None, counter_rollout=None,
                  counter_seen=None, **cfg):
    loss, metrics = vanilla(logp, old_logp, advantages, mask, **cfg)
    return loss, {**metrics, "counter/updates": float(counter_updates), "counter/got_rollout": float(counter_rollout)}


@pytest.fixture
def counter_loss():
    register_policy_loss("test_counter", state=_Counter)(_counter_loss)
    CALLS.clear()
    yield "test_counter"
    POLICY_LOSSES.pop("test_counter")
    LOSS_STATES.pop("test_counter")


def _trainer(tmp_path, loss, *, steps=3, resume=False, loss_cfg=None):
    cfg = TrainerConfig(steps=steps, batch_size=2, group_size=3, num_minibatches=2, loss=loss, lr=0.1,
                        optimizer="sgd", seed=4, loss_cfg=loss_cfg or {})
    return GRPOTrainer(TabularSoftmaxPolicy(4, n_contexts=2), make_bandit(4, n_contexts=2), context_batches(2, 2),
                       cfg, run_dir=tmp_path / "run", resume=resume)


def test_registry_holds_the_states_of_siren_and_epo():
    assert LOSS_STATES == {"siren": SirenAnchor, "epo": EpoHistory}
    with pytest.raises(TypeError, match="LossState"):
        register_policy_loss("x", state=dict)
    assert metric_name("epo_hist_entropy") == "epo/hist_entropy" and metric_name("x") == "x"


def test_hooks_are_called_generically_and_state_is_checkpointed(tmp_path, counter_loss):
    tr = _trainer(tmp_path, counter_loss, steps=2)
    lines = tr.train()
    assert CALLS == [("rollout_inputs", 0), ("observe_rollout", 1), ("rollout_inputs", 1), ("observe_rollout", 2)]
    assert [ln["counter/updates"] for ln in lines] == [0.0, 1.0, 2.0, 3.0]  # one per optimizer step
    assert [ln["counter/rollout"] for ln in lines] == [0, 0, 1, 1]  # rollout inputs are logged ...
    assert [ln["counter/got_rollout"] for ln in lines] == [0.0, 0.0, 1.0, 1.0]  # ... and passed to the loss
    assert tr.loss_state == {"updates": 4, "rewards": [lines[0]["reward/mean"], lines[2]["reward/mean"]]}
    state = json.loads(next((tmp_path / "run" / "checkpoints").glob("step-*/state.json")).read_text())
    assert state["loss_state"] == tr.loss_state
    resumed = _trainer(tmp_path, counter_loss, steps=3, resume=True)
    assert resumed.loss_state == tr.loss_state
    assert [ln["counter/updates"] for ln in resumed.train()] == [4.0, 5.0]


def test_an_input_fixed_in_loss_cfg_wins(tmp_path, counter_loss):
    lines = _trainer(tmp_path, counter_loss, steps=1, loss_cfg={"counter_updates": 7}).train()
    assert [ln["counter/updates"] for ln in lines] == [7.0, 7.0]
