"""``drex train router``: train the MM-DREX router (supervised stage, then RL).

``router_cmd`` is a typer command function registered on the ``drex train`` sub-app (``app/train.py``).
Heavy libraries (torch, pandas) load inside the command.
"""
from __future__ import annotations

from pathlib import Path

import typer

from app._common import console, user_errors

__all__ = ["router_cmd"]


def router_cmd(
    out: Path = typer.Option(..., "--out", help="run folder (the Training monitor lists $DREX_HOME/runs/*)"),
    data: list[str] = typer.Option([], "--data", help="data spec (repeatable); default: synth:regimes seeds "
                                   "1-32 and sample:SP500, sample:NASDAQ, sample:MSFT up to --end"),
    stage: str = typer.Option("sft", "--stage", help="sft (regime labels + which expert did best) or rl (GRPO)"),
    experts: str = typer.Option("rules", "--experts", help="expert set of a new router: rules | llm | a "
                                "comma-separated list of registered names (name?k=v&...)"),
    model: str | None = typer.Option(None, "--model", help="initial router: a run folder or router folder "
                                     "(rl default: the shipped router; sft default: a new one)"),
    loss: str = typer.Option("vanilla", "--loss", help="RL policy loss by registry name (vanilla, clip_cov, "
                             "kl_cov, ...)"),
    steps: int = typer.Option(1500, "--steps", min=1, help="SFT steps / RL rollout iterations"),
    batch_size: int = typer.Option(128, "--batch-size", min=1, help="SFT examples / RL bars per step"),
    group_size: int = typer.Option(8, "--group-size", min=1, help="RL experts sampled per bar (GRPO group)"),
    lr: float | None = typer.Option(None, "--lr", help="learning rate (default 1e-3 sft, 5e-5 rl)"),
    horizon: int = typer.Option(20, "--horizon", min=1, help="reward / soft-target horizon H in bars"),
    end: str = typer.Option("2014-12-31", "--end", help="last date of the real training+validation data"),
    val_frac: float = typer.Option(0.2, "--val-frac", help="last fraction of each series kept for validation"),
    fees: float = typer.Option(0.001, "--fees", help="fee fraction of traded notional"),
    entropy_coef: float = typer.Option(0.0, "--entropy-coef", help="RL entropy bonus"),
    kl_coef: float = typer.Option(0.0, "--kl-coef", help="RL KL-to-initial-router coefficient"),
    risk: str = typer.Option("none", "--risk", help="RL advantage risk shaping: none | riskpo"),
    d_model: int | None = typer.Option(None, "--d-model", help="new router: model width"),
    backbone: str | None = typer.Option(None, "--backbone", help="new router: a Hugging Face vision(-language) "
                                        "model folder or hub id instead of the small ViT"),
    backbone_tune: str = typer.Option("frozen", "--backbone-tune", help="HF backbone: frozen | lora"),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda"),
    threads: int = typer.Option(0, "--threads", min=0, help="torch CPU threads (0: torch's default)"),
    seed: int = typer.Option(0, "--seed"),
    eval_every: int = typer.Option(250, "--eval-every", min=1, help="validation period (steps)"),
    save_every: int = typer.Option(250, "--save-every", min=0, help="checkpoint period (steps)"),
    resume: bool = typer.Option(False, "--resume", help="continue from the run folder's latest checkpoint"),
    no_progress: bool = typer.Option(False, "--no-progress", help="no progress bar"),
) -> None:
    """Train the DREX router: SFT on regime labels and hindsight expert rewards, then RL with a registered loss."""
    with user_errors():
        from router.training import DEFAULT_DATA, TrainConfig, train_rl, train_sft

        if threads:
            import torch

            torch.set_num_threads(threads)

        arch: dict = {}
        if d_model:
            arch["d_model"] = d_model
        if backbone:
            arch.update(backbone=backbone, backbone_tune=backbone_tune)
        cfg = TrainConfig(stage=stage, data=tuple(data) or DEFAULT_DATA, experts=experts, end=end or None,
                          horizon=horizon, fees=fees, val_frac=val_frac, steps=steps, batch_size=batch_size, lr=lr,
                          loss=loss, group_size=group_size, entropy_coef=entropy_coef, kl_coef=kl_coef, risk=risk,
                          model=model, arch=arch, seed=seed, device=device, eval_every=eval_every,
                          save_every=save_every)
        train = train_sft if stage == "sft" else train_rl
        summary = train(cfg, out, resume=resume, progress=not no_progress)
        val = summary["val"]
        fmt = lambda v: "n/a" if v is None else f"{v:.3f}"
        console.print(f"[bold]router {stage}[/]: validation regime accuracy {fmt(val.get('regime/acc'))} "
                      f"(synthetic {fmt(val.get('regime/acc_synth'))}), regime-expert match "
                      f"{fmt(val.get('route/match_synth'))}, Sharpe {fmt(val.get('sharpe/router'))} "
                      f"(equal weight {fmt(val.get('sharpe/equal'))}) -> {out / 'model'}")


if __name__ == "__main__":  # python -m app.train_router ... (same as drex train router ...)
    typer.run(router_cmd)
