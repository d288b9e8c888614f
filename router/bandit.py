"""``bandit``: a contextual-bandit router that picks or weights experts/strategies bar by bar.

The baseline the vision-language router must beat. Its arms are decision-makers (default: the four rule-based
teachers ``trend``, ``reversal``, ``breakout``, ``positioning``; ``arms=experts``: the LLM experts
``expert:*``). One round per bar t:

* context ``x_t`` (``context_features``, causal): volatility-scaled returns over 1, 5 and 20 bars, 20-bar
  volatility and its ratio to the 100-bar one, distance to the 50- and 200-bar means, position in the 20-bar
  range (of the equal-weight average on several assets);
* the policy (``rl.bandits``; default ``SquareCB`` over a ridge oracle on ``[x, one-hot(a), x * one-hot(a)]``,
  numpy only) gives probabilities over the arms and draws one arm with its seeded generator; the decision is
  recorded in a ``rl.bandits.DecisionLog`` (context, probabilities, arm, propensity);
* the router's weight of row t is the probability-weighted mix of the arms' weights (``mode=weight``) or the
  drawn arm's weight (``mode=pick``);
* delayed feedback: the reward of round t is ``accounting.horizon_rewards`` of holding the drawn arm's row-t
  weights for ``horizon`` bars, net of ``fees``, times ``reward_scale``; it is known at bar t + horizon's close
  and only then added to the log; every ``refit_every`` bars the policy is refitted on all matured rounds.

Causal by construction: ``decide(bars)`` replays the bandit from the first bar, deterministically (seeded), so
row t uses the rewards matured by t only (rounds <= t - horizon) and bars up to t; ``start`` slices the
replay (the registry-wide look-ahead test checks it). ``components`` are the arms, so ``drex evaluate`` mixes
them into its ``equal_weight`` baseline. After ``decide`` the replay's log is in ``self.log`` (for OPE).
"""
from __future__ import annotations

import contextlib
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from backtest.decisions import Decision, DecisionMaker, Param, register

__all__ = ["ARMS", "POLICIES", "BanditRouter", "context_features"]

ARMS = {"rules": ("trend", "reversal", "breakout", "positioning"),
        "experts": ("expert:trend", "expert:reversal", "expert:breakout", "expert:positioning")}
POLICIES = ("squarecb", "epsilon_greedy", "linucb", "linear_ts")
CONTEXT = ("ret1", "ret5", "ret20", "vol20", "vol_ratio", "dist_sma50", "dist_sma200", "range_pos20")


def context_features(bars: Any) -> pd.DataFrame:
    """(T, 8) causal context (module docstring); NaN while the history is too short (200 bars)."""
    import markets

    close = markets.fields(bars, "close")
    logr = np.log(close).diff().mean(axis=1)  # equal-weight average of the assets' log returns
    level = logr.fillna(0.0).cumsum()  # log of the equal-weight index
    vol20 = logr.rolling(20).std()
    vol100 = logr.rolling(100).std()
    hi20, lo20 = level.rolling(20).max(), level.rolling(20).min()
    out = pd.DataFrame({
        "ret1": logr / vol20,
        "ret5": level.diff(5) / (vol20 * np.sqrt(5)),
        "ret20": level.diff(20) / (vol20 * np.sqrt(20)),
        "vol20": vol20 * np.sqrt(252) * 10,
        "vol_ratio": vol20 / vol100,
        "dist_sma50": (level - level.rolling(50).mean()) / (vol20 * np.sqrt(50)),
        "dist_sma200": (level - level.rolling(200).mean()) / (vol20 * np.sqrt(200)),
        "range_pos20": (level - lo20) / (hi20 - lo20),
    }, index=bars.index)
    out.iloc[:200] = np.nan
    return out.replace([np.inf, -np.inf], np.nan).clip(-10, 10)


def _one_blas_thread() -> Any:
    """Single-threaded BLAS for the replay's many small solves (a multi-threaded BLAS only adds overhead there,
    and on a busy machine a lot of it); a no-op without threadpoolctl."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def _policy(name: str, k: int, seed: int) -> Any:
    from rl.bandits import EpsilonGreedy, JointModel, LinearTS, LinUCB, RidgeRegressor, SquareCB

    if name == "squarecb":
        return SquareCB(k, JointModel(RidgeRegressor(1.0), interactions=True), seed=seed)
    if name == "epsilon_greedy":
        return EpsilonGreedy(k, JointModel(RidgeRegressor(1.0), interactions=True), epsilon=0.1, seed=seed)
    if name == "linucb":
        return LinUCB(k, alpha=1.0, seed=seed)
    return LinearTS(k, alpha=0.5, seed=seed)


@register("bandit")
class BanditRouter(DecisionMaker):
    """Contextual-bandit router over the rule-based teachers (or the LLM experts), learning from delayed rewards."""

    params: ClassVar[dict] = {
        "arms": Param("rules", choices=tuple(ARMS), doc="rules: trend/reversal/breakout/positioning; experts: "
                                                         "the LLM experts expert:*"),
        "policy": Param("squarecb", choices=POLICIES, doc="rl.bandits policy"),
        "mode": Param("weight", choices=("weight", "pick"), doc="weight: probability-weighted mix of the arms; "
                                                                  "pick: the drawn arm"),
        "horizon": Param(5, low=1, doc="reward horizon H in bars (the reward of bar t is known at t + H)"),
        "refit_every": Param(20, low=1, doc="bars between refits on the matured rewards"),
        "fees": Param(0.001, low=0.0, high=0.5, doc="fee fraction in the rewards"),
        "reward_scale": Param(100.0, low=0.0, low_open=True, doc="rewards = net H-bar return x this"),
        "seed": Param(0, doc="seed of the arm draws"),
    }
    example_spec = "sample:SP500"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.arms = ARMS[self.config["arms"]]
        self.log = None

    @property
    def components(self) -> tuple:
        return tuple((a, {}) for a in self.arms)

    @property
    def warmup(self) -> int:
        from backtest.decisions import build

        return max([200, *(build(a).warmup for a in self.arms)])

    def _arm_weights(self, bars: Any) -> np.ndarray:
        """(K, T, N) target weights of the arms (NaN -> 0)."""
        from backtest.decisions import build, decide

        out = []
        for a in self.arms:
            w = decide(build(a), bars).weights
            out.append(np.nan_to_num(np.asarray(w, dtype=np.float64).reshape(len(bars), -1)))
        return np.stack(out)

    def decide(self, bars: Any, *, start: int = 0) -> Decision:
        from markets.frames import assets

        arm_w = self._arm_weights(bars)  # (K, T, N)
        x = context_features(bars).to_numpy()
        with _one_blas_thread():
            probs, chosen, weights, self.log = self._replay(bars, x, arm_w)
        names = assets(bars)
        trace = {f"p/{a}": probs[:, i] for i, a in enumerate(self.arms)}
        trace["arm"] = chosen.astype(float)
        trace.update({f"weight/{n}": weights[:, j] for j, n in enumerate(names)})
        trace = pd.DataFrame(trace, index=bars.index)
        if isinstance(bars.columns, pd.MultiIndex):
            w = pd.DataFrame(weights, index=bars.index, columns=pd.Index(names, name="asset"))
        else:
            w = pd.Series(weights[:, 0], index=bars.index, name="weight")
        return Decision(w.iloc[start:], trace.iloc[start:])

    def _rewards(self, bars: Any, x: np.ndarray, arm_w: np.ndarray) -> np.ndarray:
        """(T, K) scaled net H-bar reward of each arm's row-t weights (NaN where unknowable or no context).
        Row t reads bars t..t+H: the replay uses it only from bar t + H on."""
        import markets
        from backtest.accounting import horizon_rewards

        H, (K, T, _) = int(self.config["horizon"]), arm_w.shape
        rewards = np.full((T, K), np.nan)
        rounds = np.flatnonzero(np.isfinite(x).all(axis=1) & (np.arange(T) + H <= T - 1))
        if rounds.size:
            tt = np.repeat(rounds, K)
            expo = arm_w[np.tile(np.arange(K), rounds.size), tt]  # (R*K, N)
            opens, closes = (markets.fields(bars, f).to_numpy(np.float64) for f in ("open", "close"))
            r = horizon_rewards(opens, closes, tt, expo, H, fees=float(self.config["fees"]))
            rewards[rounds] = r.reshape(rounds.size, K) * float(self.config["reward_scale"])
        return rewards

    def _replay(self, bars: Any, x: np.ndarray, arm_w: np.ndarray) -> tuple:
        """The bandit from bar 0: every ``refit_every`` bars, add the rewards matured by then (rounds <= s - H),
        refit, then act on the block's bars with the fixed policy (the draws, one per bar in order, and the
        row-wise predictions are those of acting bar by bar). Returns probabilities (T, K), arms (T,),
        weights (T, N) and the decision log."""
        from rl.bandits import DecisionLog

        cfg = self.config
        H, G, (K, T, N) = int(cfg["horizon"]), int(cfg["refit_every"]), arm_w.shape
        rewards = self._rewards(bars, x, arm_w)
        policy = _policy(cfg["policy"], K, int(cfg["seed"]))
        log = DecisionLog(K, x.shape[1])
        logged = np.full(T, -1, dtype=np.int64)  # round id of bar t (-1: none)
        chosen = np.full(T, -1, dtype=np.int64)
        probs, weights = np.full((T, K), np.nan), np.zeros((T, N))
        ok = np.isfinite(x).all(axis=1)
        added = 0  # bars < added have had their rewards added
        for s in range(0, T, G):
            upto = max(0, s - H + 1)  # rounds t <= s - H have matured by bar s's close
            new = np.flatnonzero(logged[added:upto] >= 0) + added
            if new.size:
                log.add_rewards(logged[new], rewards[new, chosen[new]])
                policy.fit(log.data())
            added = max(added, upto)
            rows = np.flatnonzero(ok[s:s + G]) + s
            if not rows.size:
                continue
            d = policy.act(x[rows])
            chosen[rows], probs[rows] = d.actions, d.probabilities
            keep = rows + H <= T - 1  # a reward can mature within these bars: log the round
            if keep.any():
                sub = type(d)(d.actions[keep], d.propensities[keep], d.probabilities[keep])
                logged[rows[keep]] = log.record(x[rows[keep]], sub)
            picked = arm_w[d.actions, rows]  # (R, N)
            mixed = np.einsum("rk,krn->rn", d.probabilities, arm_w[:, rows])
            weights[rows] = picked if cfg["mode"] == "pick" else mixed
        new = np.flatnonzero(logged[added:] >= 0) + added  # the rest matured by the last bar: a complete log
        if new.size:
            log.add_rewards(logged[new], rewards[new, chosen[new]])
        return probs, chosen, weights, log
