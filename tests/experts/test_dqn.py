"""The deep-Q pairs agent: a few thousand DQN steps beat a random policy on the test window of a synthetic
mean-reverting pair (seeded, through the backtester, net of fees); the exported numpy policy makes SB3's
greedy decisions; the manifest refuses tampered and foreign files; the CVaR QR-DQN's action rule."""
from __future__ import annotations

import json

import numpy as np
import pytest

SPEC = "synth:pairs?seed=3&n=3000&half_life=30&spread_vol=0.004"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from experts.dqn import DQNConfig, train

    home = tmp_path_factory.mktemp("dqn_home")
    mp = pytest.MonkeyPatch()
    mp.setenv("DREX_HOME", str(home))  # the module-scoped run's signing key lives here
    cfg = DQNConfig(spec=SPEC, steps=8000, n_envs=32, batch_size=128, learning_starts=1000, fees=0.0002,
                    hedge_window=60, episode_bars=128, target_update=1000, exploration_fraction=0.5,
                    log_every=2000, seed=0)
    run = home / "runs" / "dqn-test"
    summary = train(cfg, run)
    mp.undo()
    return cfg, run, summary, home


@pytest.fixture
def same_home(trained, monkeypatch):
    monkeypatch.setenv("DREX_HOME", str(trained[3]))


def test_dqn_beats_a_random_policy_on_the_test_window(trained):
    _cfg, run, summary, _ = trained
    test = summary["test"]
    assert summary["pair"] in (["A", "B"], ["B", "A"])
    assert summary["test_window"][0] == int(3000 * 0.7)
    # the random policy trades nearly every bar and pays for it; the agent must do better, net of fees
    assert test["agent"]["total_return"] > test["random"]["total_return"] + 0.05
    assert test["random"]["n_trades"] > 3 * test["agent"]["n_trades"]
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) >= 3 and lines[-1]["step"] >= 6000
    finished = [x for x in lines if x["step"] > 32 * 128]  # the first episodes end after 128 vector steps
    assert finished and all(np.isfinite(x["reward/mean"]) and np.isfinite(x["train/loss"]) for x in finished)
    assert json.loads((run / "evaluation.json").read_text())["test"]["agent"] == pytest.approx(test["agent"],
                                                                                          nan_ok=True)


def test_numpy_policy_makes_sb3s_greedy_decisions(trained, same_home):
    import torch

    from experts.dqn import load_sb3
    from experts.dqn_pairs import load_model

    _, run, _, _ = trained
    _config, policy = load_model(run / "model")
    model = load_sb3(run / "model")
    obs = np.random.default_rng(0).normal(0, 2, (200, model.observation_space.shape[0])).astype(np.float32)
    with torch.no_grad():
        q = model.q_net(torch.as_tensor(obs)).numpy()
    ours = np.stack([policy(o) for o in obs])
    np.testing.assert_allclose(ours, q, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(ours.argmax(1), model.predict(obs, deterministic=True)[0])


def test_the_decision_maker_backtests_from_the_run_folder(trained, same_home):
    import backtest
    import markets

    _, run, summary, _ = trained
    bars = markets.load(SPEC)
    hi = summary["test_window"][0]
    res = backtest.run_strategy(bars, "dqn_pairs", {"model": str(run)}, start=hi, fees=0.0002)
    assert res.result.metrics["total_return"] == pytest.approx(summary["test"]["agent"]["total_return"], rel=1e-12)
    tr = res.decision.trace
    assert {"z", "hedge", "action", "side", "score_long", "agent_equity"} <= set(tr.columns)
    assert set(np.unique(tr["side"])) <= {-1.0, 0.0, 1.0}


def test_manifest_refuses_tampered_and_foreign_files(trained, same_home, tmp_path, monkeypatch):
    import shutil

    from experts.dqn import load_sb3
    from experts.dqn_pairs import load_model

    _, run, _, _ = trained
    copy = tmp_path / "model"
    shutil.copytree(run / "model", copy)
    load_model(copy)  # intact: loads
    data = bytearray((copy / "policy.safetensors").read_bytes())
    data[-1] ^= 1
    (copy / "policy.safetensors").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="modified after DREX wrote it"):
        load_model(copy)
    shutil.rmtree(copy)
    shutil.copytree(run / "model", copy)
    with open(copy / "sb3.zip", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ValueError, match="sb3.zip was modified"):
        load_sb3(copy)
    shutil.rmtree(copy)
    shutil.copytree(run / "model", copy)
    monkeypatch.setenv("DREX_MANIFEST_KEY", "another machine")  # a model someone else wrote and signed
    with pytest.raises(ValueError, match="not signed by this machine"):
        load_sb3(copy)
    load_model(copy)  # safetensors + JSON need no signature (no pickle), only intact hashes
    (copy / "manifest.json").unlink()
    with pytest.raises(ValueError, match="no manifest.json"):
        load_model(copy)


def test_missing_model_names_the_training_command():
    from backtest.decisions import build

    with pytest.raises(FileNotFoundError, match="drex train dqn"):
        build("dqn_pairs", {"model": "runs/does-not-exist"})


def test_cvar_scores_numpy_equals_torch_and_hand_values():
    import torch

    from experts.cvar import choose_threshold, stock_scores
    from experts.cvar_qrdqn import stock_scores_torch

    q = np.array([[[-3.0, 0.0], [1.0, 0.5], [5.0, 0.6]]])  # (1, Q=3, A=2): risky a0 (mean 1), safe a1 (0.367)
    # with stock 0 (threshold at 0): a0 -> mean(min(q, 0)) = -1, a1 -> 0: the CVaR rule picks the safe action
    s = stock_scores(q, np.array([0.0]), tie=0.0)
    np.testing.assert_allclose(s, [[-1.0, 0.0]])
    # far above the threshold every quantile clears it: the tie term picks the higher mean
    assert stock_scores(q, np.array([10.0]))[0].argmax() == 0
    t = stock_scores_torch(torch.tensor(q), torch.tensor([0.0, ])).numpy()
    np.testing.assert_allclose(t, stock_scores(q, np.array([0.0])))
    # Rockafellar-Uryasev on a known distribution: quantiles of U(0, 1), alpha 0.5 -> CVaR = 0.25
    qs = (np.arange(100) + 0.5) / 100
    b, cvar = choose_threshold(lambda c: qs[:, None], np.linspace(0, 1, 101), 0.5)
    assert b == pytest.approx(0.5, abs=0.011) and cvar == pytest.approx(0.25, abs=1e-3)
