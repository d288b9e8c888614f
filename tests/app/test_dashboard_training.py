"""Training monitor page (Streamlit AppTest on the real page script) and its JSONL reader."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

import app.dashboard
from app.dashboard import training_runs as tr

ENTRY = str(Path(app.dashboard.__file__).with_name("main.py"))


def _write_run(root: Path, name: str, n: int, *, slope: float, partial: bool = False, loss: str = "ppo") -> Path:
    run = root / name
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"loss": loss, "lr": 1e-3, "seed": 0}))
    lines = [
        json.dumps({"step": i, "reward/mean": slope * i, "reward/std": 1.0, "entropy": 2.0 - 0.05 * i,
                    "entropy/change": -0.05, "clipfrac_low": 0.01, "clipfrac_high": 0.02, "approx_kl": 1e-3 * i,
                    "kl": 0.002, "cov/mean": 0.3, "grad_norm": 1.5, "tokens_per_s": 1000.0, "note": "text"})
        for i in range(n)
    ]
    text = "\n".join(lines) + "\n" + (f'{{"step": {n}, "reward/me' if partial else "")
    (run / "metrics.jsonl").write_text(text)
    return run


def _values(arr) -> np.ndarray:
    """A plotly JSON array: a list, or plotly's typed-array encoding {"dtype", "bdata" (base64)}."""
    if isinstance(arr, dict):
        return np.frombuffer(base64.b64decode(arr["bdata"]), dtype=np.dtype(arr["dtype"]))
    return np.asarray(arr)


def _page(timeout: float = 60) -> AppTest:
    at = AppTest.from_file(ENTRY, default_timeout=timeout)
    at.switch_page("views/training.py")
    return at.run()


# ------------------------------------------------------------------------------------------- reader
def test_read_metrics_skips_partial_last_line_and_reports_it(tmp_path):
    run = _write_run(tmp_path, "a", 5, slope=0.5, partial=True)
    m = tr.read_metrics(run)
    assert m.partial_tail and m.bad_lines == ()
    assert list(m.frame.index) == [0, 1, 2, 3, 4]
    assert m.frame["reward/mean"].tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert "note" not in m.frame.columns  # non-numeric keys dropped
    assert m.config["loss"] == "ppo"


def test_read_metrics_bad_middle_line_resumed_steps_and_nan_strings(tmp_path):
    run = tmp_path / "b"
    run.mkdir()
    (run / "metrics.jsonl").write_text(
        '{"step": 0, "kl": 1}\nnot json\n{"step": 1, "kl": "nan"}\n{"step": 1, "kl": 3}\n[1, 2]\n{"step": 2, "kl": 4}\n'
    )
    m = tr.read_metrics(run)
    assert not m.partial_tail and m.bad_lines == (2, 5)
    assert m.frame["kl"].tolist() == [1.0, 3.0, 4.0]  # step 1 logged twice (resume): last record wins
    assert m.config == {}


def test_read_metrics_missing_file_and_missing_step_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no metrics.jsonl"):
        tr.read_metrics(tmp_path)
    (tmp_path / "metrics.jsonl").write_text('{"step": 0, "kl": 1}\n{"kl": 2}\n')
    with pytest.raises(ValueError, match="record 2 has no numeric 'step'"):
        tr.read_metrics(tmp_path)


def test_list_runs_newest_first_and_groups():
    import os

    root = Path(os.environ["DREX_HOME"]) / "runs"
    _write_run(root, "old", 3, slope=1.0)
    new = _write_run(root, "new", 3, slope=1.0)
    (root / "not-a-run").mkdir()
    t = (root / "old" / "metrics.jsonl").stat().st_mtime_ns
    os.utime(new / "metrics.jsonl", ns=(t + 10**9, t + 10**9))
    assert tr.list_runs() == ["new", "old"]
    groups = tr.group_columns(["reward/mean", "reward/std", "entropy", "entropy/change", "clipfrac_low",
                               "clip_cov/n_detached", "kl", "approx_kl", "cov/mean", "loss"])
    assert groups["Reward"] == ["reward/mean", "reward/std"]
    assert groups["Entropy"] == ["entropy"] and groups["Entropy change"] == ["entropy/change"]
    assert groups["KL"] == ["kl", "approx_kl"]
    assert groups["Covariance"] == ["clip_cov/n_detached", "cov/mean"]
    assert groups["Other"] == ["loss"]


def test_list_runs_finds_runs_one_level_deeper():
    """`drex train experts --expert all --out runs/x` writes runs/x/<style>/metrics.jsonl: listed as x/<style>."""
    import os

    root = Path(os.environ["DREX_HOME"]) / "runs"
    _write_run(root, "single", 2, slope=1.0)
    for style in ("trend", "reversal"):
        _write_run(root / "experts-sft", style, 2, slope=1.0)
    (root / "experts-sft" / "notes").mkdir()
    deeper = root / "a" / "b" / "c"
    deeper.mkdir(parents=True)
    (deeper / "metrics.jsonl").write_text('{"step": 1}\n')  # two levels down: not a run
    assert sorted(tr.list_runs()) == ["experts-sft/reversal", "experts-sft/trend", "single"]
    m = tr.read_metrics(root / "experts-sft/trend", name="experts-sft/trend")
    assert m.name == "experts-sft/trend" and len(m.frame) == 2


def test_smooth_matches_tensorboard_debiased_ema():
    x = pd.DataFrame({"v": [1.0, 3.0, np.nan, 2.0]})
    w = 0.6
    last, out, k = 0.0, [], 0
    for v in x["v"]:  # TensorBoard's loop: biased EMA then divide by 1 - w^k (NaN points skipped)
        if np.isnan(v):
            out.append(out[-1])
            continue
        k += 1
        last = last * w + (1 - w) * v
        out.append(last / (1 - w**k))
    np.testing.assert_allclose(tr.smooth(x, w)["v"].to_numpy(), out, rtol=1e-12)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        tr.smooth(x, 1.0)


# -------------------------------------------------------------------------------------------- page
def test_training_page_overlays_runs_and_tolerates_a_run_being_written():
    import os

    root = Path(os.environ["DREX_HOME"]) / "runs"
    _write_run(root, "ppo-run", 30, slope=0.1, loss="ppo")
    _write_run(root, "cispo-run", 25, slope=0.2, partial=True, loss="cispo")
    at = _page()
    assert not at.exception, at.exception
    assert not at.error
    assert at.title[0].value == "Training monitor"
    assert sorted(at.multiselect(key="tm_runs").value) == ["cispo-run", "ppo-run"]
    summary = at.dataframe[0].value.set_index("run")
    assert summary.loc["ppo-run", "steps"] == 30 and summary.loc["cispo-run", "steps"] == 25
    assert summary.loc["cispo-run", "reward/mean"] == pytest.approx(0.2 * 24)
    assert summary.loc["cispo-run", "loss"] == "cispo"
    assert any("cispo-run: last line incomplete" in c.value for c in at.caption)
    charts = at.get("plotly_chart")
    # Reward, Entropy, Entropy change, Clip fractions, KL, Covariance, Gradient norm, Throughput
    assert len(charts) == 8
    reward = json.loads(charts[0].proto.spec)["data"]
    names = [t["name"] for t in reward]
    assert "ppo-run · reward/mean" in names and "cispo-run · reward/std" in names
    trace = next(t for t in reward if t["name"] == "ppo-run · reward/mean")
    np.testing.assert_array_equal(_values(trace["x"]), np.arange(30))
    np.testing.assert_allclose(_values(trace["y"]), 0.1 * np.arange(30))

    at.multiselect(key="tm_runs").set_value(["ppo-run"]).run()
    reward = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
    assert {t["name"].split(" · ")[0] for t in reward} == {"ppo-run"}


def test_training_page_without_runs_says_where_it_looked():
    at = _page()
    assert not at.exception and not at.error
    assert "No training runs yet" in at.info[0].value
    assert not at.get("plotly_chart")


def _group_adv(scores, n):
    """Group-normalised advantage (B*n,) -> (B*n,), local so this test does not depend on rl.advantages."""
    g = scores.reshape(-1, n)  # (B, n)
    return ((g - g.mean(1, keepdim=True)) / (g.std(1, keepdim=True) + 1e-6)).reshape(-1)


def test_training_page_reads_runs_written_by_the_real_trainer():
    """Two tiny runs of rl.trainer.GRPOTrainer (different losses) under $DREX_HOME/runs, overlaid."""
    import os

    from rl.toy import TabularSoftmaxPolicy, context_batches, make_bandit
    from rl.trainer import GRPOTrainer, TrainerConfig

    root = Path(os.environ["DREX_HOME"]) / "runs"
    logged = {}
    for loss in ("vanilla", "cispo"):
        cfg = TrainerConfig(steps=3, batch_size=3, group_size=4, lr=0.05, optimizer="adam", ppo_epochs=1,
                            num_minibatches=1, seed=7, loss=loss)
        trainer = GRPOTrainer(TabularSoftmaxPolicy(6, n_contexts=3, seq_len=4, eos_token=0),
                              make_bandit(6, n_contexts=3, n_good=2, seed=0), context_batches(3, 3), cfg,
                              run_dir=root / f"{loss}-run", advantage_fn=_group_adv)
        logged[loss] = trainer.train()
    m = tr.read_metrics(root / "cispo-run")
    assert m.config["loss"] == "cispo" and not m.partial_tail and not m.bad_lines
    assert list(m.frame.index) == [rec["step"] for rec in logged["cispo"]]
    np.testing.assert_allclose(m.frame["reward/mean"], [rec["reward/mean"] for rec in logged["cispo"]])
    np.testing.assert_allclose(m.frame["entropy"], [rec["entropy"] for rec in logged["cispo"]])

    at = _page()
    assert not at.exception and not at.error
    assert sorted(at.multiselect(key="tm_runs").value) == ["cispo-run", "vanilla-run"]
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    by_title = {s["layout"]["title"]["text"]: s["data"] for s in specs}
    assert {"Reward", "Entropy", "Entropy change", "Clip fractions", "KL", "Covariance"} <= set(by_title)
    trace = next(t for t in by_title["Entropy"] if t["name"].startswith("vanilla-run"))
    np.testing.assert_allclose(_values(trace["y"]), [rec["entropy"] for rec in logged["vanilla"]])
