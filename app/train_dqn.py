"""``drex train dqn SPEC --pairs auto --steps N --out runs/NAME [--algo dqn|qrdqn-cvar --alpha 0.1]``.

Trains the deep-Q pairs agent (``experts.dqn``): Engle-Granger pair selection on the training window, SB3 DQN
or the CVaR QR-DQN on the batched pairs environment, ``metrics.jsonl`` (the dashboard's Training monitor plots
it), checkpoints, the final model under ``<out>/model`` and its test-window evaluation against the z-score
rule. Backtest it with ``drex backtest SPEC -s dqn_pairs -p model=<out>``. Heavy libraries load inside.
"""
from __future__ import annotations

from pathlib import Path

import typer

from app._common import console, user_errors

__all__ = ["dqn_cmd"]


def dqn_cmd(
    spec: str = typer.Argument(..., help="data spec with two or more assets, e.g. synth:pairs or sample:SP20"),
    pairs: str = typer.Option("auto", "--pairs", help="auto (Engle-Granger on the training window) or Y,X"),
    steps: int = typer.Option(200_000, "--steps", min=1, help="environment steps (transitions)"),
    out: Path = typer.Option(..., "--out", help="run folder (metrics.jsonl, checkpoints/, model/, evaluation.json)"),
    algo: str = typer.Option("dqn", "--algo", help="dqn | qrdqn-cvar (QR-DQN acting on CVaR_alpha)"),
    alpha: float = typer.Option(0.1, "--alpha", help="CVaR level of qrdqn-cvar"),
    train_frac: float = typer.Option(0.7, "--train-frac", help="share of the bars in the training window"),
    n_envs: int = typer.Option(32, "--n-envs", min=1, help="episodes stepped together (one vector step)"),
    fees: float = typer.Option(0.001, "--fees", help="fee fraction of traded notional (training and evaluation)"),
    slippage: float = typer.Option(0.0, "--slippage", help="slippage fraction"),
    hedge_window: int = typer.Option(120, "--hedge-window", min=3, help="bars of the rolling hedge regression"),
    episode_bars: int = typer.Option(256, "--episode-bars", min=1, help="steps per training episode"),
    max_hold: int = typer.Option(240, "--max-hold", min=1, help="timeout: close a trade after this many bars"),
    stop_loss: float = typer.Option(0.02, "--stop-loss", help="close a trade at this loss (fraction of equity)"),
    reward_scale: float = typer.Option(1000.0, "--reward-scale", help="rewards = net return per bar x this"),
    gamma: float = typer.Option(0.99, "--gamma", help="discount"),
    lr: float = typer.Option(5e-4, "--lr", help="learning rate"),
    seed: int = typer.Option(0, "--seed"),
    log_every: int = typer.Option(5_000, "--log-every", min=1, help="env steps between metrics lines"),
    save_every: int = typer.Option(0, "--save-every", min=0, help="env steps between checkpoints (0: none)"),
    resume: bool = typer.Option(False, "--resume", help="continue the model in <out>/model (signed by this "
                                "machine's DREX; anything else is refused)"),
    no_progress: bool = typer.Option(False, "--no-progress", help="no progress lines"),
) -> None:
    """Train the deep-Q pairs agent (DQN or CVaR QR-DQN) and evaluate it against the z-score rule."""
    with user_errors():
        from experts.dqn import DQNConfig, train

        cfg = DQNConfig(spec=spec, pairs=pairs, algo=algo, alpha=alpha, steps=steps, train_frac=train_frac,
                        n_envs=n_envs, seed=seed, fees=fees, slippage=slippage, hedge_window=hedge_window,
                        max_hold=max_hold, stop_loss=stop_loss, episode_bars=episode_bars,
                        reward_scale=reward_scale, gamma=gamma, lr=lr, log_every=log_every, save_every=save_every)

        def show(line: dict) -> None:
            console.print(f"step {line['step']:>9,}  episode return {line['reward/mean']:+9.3f}  "
                          f"epsilon {line['exploration_rate']:.3f}  loss {line['train/loss']:.4f}  "
                          f"{line['steps_per_s']:,.0f} steps/s", highlight=False)

        console.print(f"training {algo} on {spec} ({steps:,} steps, {n_envs} envs) -> {out}")
        summary = train(cfg, out, progress=None if no_progress else show, resume=resume)
        y, x = summary["pair"]
        console.print(f"pair {y}/{x}; test window from {summary['train_end']} (bars {summary['test_window']}), "
                      f"net of fees {fees:g}:")
        from rich.table import Table

        table = Table()
        for col in ("strategy", "total return", "Sharpe", "max drawdown", "CVaR 5%", "orders"):
            table.add_column(col, justify="right" if col != "strategy" else "left")
        for name, m in summary["test"].items():
            table.add_row(name, f"{m['total_return']:+.4f}", f"{m['sharpe']:.2f}", f"{m['max_drawdown']:.4f}",
                          f"{m['cvar_5']:.5f}", f"{m['n_trades']:.0f}")
        console.print(table)
        console.print(f"model: {Path(out) / 'model'}  (drex backtest {spec} -s dqn_pairs -p model={out})")
