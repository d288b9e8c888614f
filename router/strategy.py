"""The routed strategy ``drex``: router weights over the experts, combined, projected onto constraints.

For every bar t (and asset): the router reads the chart of the last W bars and the long-horizon features
(:mod:`router.model`) and outputs weights ``w_k`` over the K experts; the experts decide their weights
``h_k`` (:mod:`router.experts`); then

    raw_t      = sum_k w_k h_k                                     (per asset)
    long_only  : raw_t <- max(raw_t, 0)
    turnover_penalty = lam > 0:
                 p_t = p_{t-1} + sign(d) max(|d| - lam, 0),  d = raw_t - p_{t-1},  p_{-1} = 0
                 (the prox of the L1 turnover penalty lam |p - p_{t-1}|: a no-trade band of half-width lam
                 around the held position, in weight units; the engine's own ``band`` is relative and separate)
    gross_cap  : rows with sum_j |p_tj| > gross_cap are scaled down to it

The engine executes p_t at t+1. Everything is vectorized over the bars: one batched router pass (in fixed
micro-batches), one decision per expert. ``decide(bars, start=k)`` runs the router only on rows ``>= k``
when ``turnover_penalty == 0`` (paper ticks cost O(new bars)); the penalty's recursion starts at row 0, so
with ``turnover_penalty > 0`` every row is routed (router outputs are memoized per input content in the
process and in the on-disk cache :mod:`router.cache`, so a repeated or extended history costs only its new
rows).

Trace per bar (``ASSET/...`` on several assets): ``w_<expert>`` (routing weights), ``h_<expert>`` (each
expert's weight), ``answer_<expert>`` (LLM experts' answer text), ``p_<regime>`` and ``regime`` (the regime
head), ``raw`` and ``position``, ``chart_first`` / ``chart_last`` (the chart window's first and last bar).
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from backtest.decisions import Decision, DecisionMaker, Param

__all__ = ["RoutedStrategy", "project", "resolve_router"]

_NETS: dict[tuple[str, str], Any] = {}
_MEMOS: dict[tuple, OrderedDict] = {}  # per (router, device, batch): input hash -> [log weights, regime probs]
_LOCK = threading.Lock()
_MEMO_ROWS = 200_000


SHIPPED = ("default", "rules")
"""Routers shipped in ``router/checkpoints/``: ``default`` routes over the LLM experts (trained over them);
``rules`` over the long/short rule-based experts (trained over them; the synthetic-regime evidence)."""


def resolve_router(checkpoint: str) -> Path:
    """The router folder ``checkpoint`` names: a shipped one (:data:`SHIPPED`), a router folder, or a run folder
    of ``drex train router`` (its ``model/``)."""
    from backtest.decisions import resolve_checkpoint

    name = str(checkpoint)
    if name in SHIPPED:
        path = resolve_checkpoint("default", package="router", default=name)
    else:
        path = resolve_checkpoint(name, package="router", default="default")
    for cand in (path, path / "model"):
        if (cand / "config.json").is_file() and (cand / "model.safetensors").is_file():
            return cand
    raise FileNotFoundError(f"checkpoint {checkpoint!r} holds no router (looked for config.json and "
                            "model.safetensors in it and in its model/ folder); pass a run folder of "
                            "`drex train router` or checkpoint=default")


def _load(path: Path, device: str):
    key = (str(path.resolve()), device)
    with _LOCK:
        if key not in _NETS:
            from router.model import load_router

            _NETS[key] = load_router(path, device=device)
        return _NETS[key]


def project(raw: np.ndarray, *, gross_cap: float, long_only: bool, turnover_penalty: float) -> np.ndarray:
    """Constraint projection of combined positions ``raw (T, N)`` -> ``(T, N)`` (module docstring)."""
    p = np.maximum(raw, 0.0) if long_only else np.array(raw, dtype=np.float64)
    band = turnover_penalty
    if band > 0:
        out = np.empty_like(p)
        prev = np.zeros(p.shape[1])
        for t in range(len(p)):  # the band is path-dependent: one cheap pass over (N,) rows
            d = p[t] - prev
            prev = prev + np.sign(d) * np.maximum(np.abs(d) - band, 0.0)
            out[t] = prev
        p = out
    gross = np.abs(p).sum(axis=1, keepdims=True)
    return p * np.where(gross > gross_cap, gross_cap / np.maximum(gross, 1e-300), 1.0) + 0.0


class RoutedStrategy(DecisionMaker):
    """DREX: a vision-language router weights the experts; position = sum_k w_k h_k under constraints."""

    params: ClassVar[dict[str, Param]] = {
        "checkpoint": Param("default", doc="'default' (shipped, over the LLM experts), 'rules' (shipped, over "
                            "the rule experts), a run folder of `drex train router`, or a router folder"),
        "experts": Param("checkpoint", doc="expert set: 'checkpoint' (the one it was trained on), 'rules', "
                         "'llm', or a comma-separated list of registered names (name?k=v&...)"),
        "gross_cap": Param(1.0, low=0.0, high=10.0, low_open=True, doc="cap on gross exposure sum|w|"),
        "long_only": Param(False, doc="drop short positions"),
        "turnover_penalty": Param(0.0, low=0.0, high=2.0, doc="L1 turnover penalty lam: no trade while the "
                                  "target is within lam (weight units) of the held position"),
        "temperature": Param(1.0, low=0.01, high=100.0, doc="softmax temperature of the routing weights"),
        "device": Param("cpu", doc="cpu, cuda, cuda:N or auto"),
        "batch_size": Param(64, low=1, high=8192, doc="router micro-batch (rows)"),
        "cache": Param(True, doc="keep router outputs in the on-disk cache ($DREX_HOME/cache/router)"),
    }
    example_spec = "sample:SP500"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        from router.experts import parse_experts

        self.path = resolve_router(self.config["checkpoint"])
        import json

        saved = json.loads((self.path / "config.json").read_text(encoding="utf-8"))
        trained = parse_experts(list(saved["experts"]))
        self.regimes = tuple(saved["regimes"])
        self.chart = {k: int(saved[k]) for k in ("window", "height", "volume_rows")}
        self.temporal = tuple(int(saved[k]) for k in ("chunks", "chunk", "baseline"))
        choice = self.config["experts"]
        self.experts = trained if choice == "checkpoint" else parse_experts(choice)
        if len(self.experts) != len(trained):
            raise ValueError(f"experts={choice!r} lists {len(self.experts)} experts but the router "
                             f"{self.path} weights {len(trained)}; pass a set of the same size or another "
                             "checkpoint")
        self._device = self._resolve_device(str(self.config["device"]))
        # shared by the instances on this router, device and micro-batch (the batch fixes the kernels, so the
        # floats): a sweep over the constraints routes once
        key = (str(self.path.resolve()), self._device, int(self.config["batch_size"]))
        self._memo = _MEMOS.setdefault(key, OrderedDict())
        from router.cache import router_identity

        self._salt = f"{router_identity(self.path)}|{self._device}|{int(self.config['batch_size'])}|".encode()

    @staticmethod
    def _resolve_device(device: str) -> str:
        if device != "auto":
            return device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    @property
    def components(self) -> list[tuple[str, dict[str, Any]]]:
        """The experts as (name, params): ``drex evaluate`` evaluates them too and mixes them as ``equal_weight``."""
        return [(s.name, dict(s.params)) for s in self.experts]

    @property
    def warmup(self) -> int:
        from backtest.decisions import build

        chunks, chunk, _ = self.temporal
        own = max(chunks * chunk + chunk, self.chart["window"])
        return int(max([own] + [build(s.name, s.params).warmup for s in self.experts]))

    # ------------------------------------------------------------------------------------------ routing
    def route(self, ohlcv: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Weights ``(R, K)`` and regime probabilities ``(R, P)`` of one asset's ``rows`` (memoized per input)."""
        from router.charts import render
        from router.features import TemporalSpec, temporal_inputs

        K = len(self.experts)
        charts = render(ohlcv, rows, **self.chart)
        chunks, now = temporal_inputs(ohlcv, spec=TemporalSpec(*self.temporal), rows=rows)
        keys = [hashlib.blake2b(self._salt + charts[i].tobytes() + chunks[i].tobytes() + now[i].tobytes(),
                                digest_size=16).digest() for i in range(len(rows))]
        with _LOCK:
            known = {k: self._memo[k] for k in set(keys) if k in self._memo}
        disk = None
        if self.config["cache"] and len(known) < len(set(keys)):
            from router.cache import RouterCache

            disk = RouterCache()
            known.update(disk.get_many([k for k in dict.fromkeys(keys) if k not in known]))
        todo = [i for i, k in enumerate(keys) if k not in known]
        if todo:
            from router.model import route

            net = _load(self.path, self._device)
            idx = np.array(todo)
            w, p = route(net, charts[idx], chunks[idx], now[idx], batch=int(self.config["batch_size"]),
                         device=self._device)
            fresh = np.concatenate([np.log(np.maximum(w, 1e-300)), p], axis=1)
            new = {keys[i]: fresh[j] for j, i in enumerate(todo)}
            known.update(new)
            if disk is not None:
                disk.put_many(new)
        with _LOCK:
            for k in keys:
                self._memo[k] = known[k]
            while len(self._memo) > _MEMO_ROWS:
                self._memo.popitem(last=False)
        out = np.stack([known[k] for k in keys]) if keys else np.empty((0, K + len(self.regimes)))
        logw = out[:, :K] / float(self.config["temperature"])
        logw -= logw.max(axis=1, keepdims=True)
        w = np.exp(logw)
        return w / w.sum(axis=1, keepdims=True), out[:, K:]

    # ------------------------------------------------------------------------------------------ decide
    def decide(self, bars: Any, *, start: int = 0) -> Decision:
        import pandas as pd

        from router.experts import exposures, label

        c = self.config
        multi = isinstance(bars.columns, pd.MultiIndex)
        T = len(bars.index)
        first = 0 if c["turnover_penalty"] > 0 else start  # the penalty's recursion starts at row 0
        rows = np.arange(first, T)
        ex = exposures(bars, self.experts, start=first)  # (R, N, K)
        assets = list(dict.fromkeys(bars.columns.get_level_values(0))) if multi else [None]
        labels = [label(s) for s in self.experts]
        W = np.empty((len(rows), len(assets), len(labels)))
        P = np.empty((len(rows), len(assets), len(self.regimes)))
        for j, a in enumerate(assets):
            one = bars[a] if multi else bars
            ohlcv = one[["open", "high", "low", "close", "volume"]].to_numpy(np.float64)
            W[:, j], P[:, j] = self.route(ohlcv, rows)
        raw = (W * ex.weights).sum(-1)  # (R, N)
        pos = project(raw, gross_cap=float(c["gross_cap"]), long_only=bool(c["long_only"]),
                      turnover_penalty=float(c["turnover_penalty"]))
        keep = slice(start - first, None)
        index = bars.index[start:]
        first_bar = bars.index[np.maximum(rows - self.chart["window"] + 1, 0)][keep]
        cols: dict[str, Any] = {}
        for j, a in enumerate(assets):
            pre = f"{a}/" if multi else ""
            for k, lb in enumerate(labels):
                cols[f"{pre}w_{lb}"] = W[keep, j, k]
            for k, lb in enumerate(labels):
                cols[f"{pre}h_{lb}"] = ex.weights[keep, j, k]
            if ex.answers is not None:
                for k, lb in enumerate(labels):
                    cols[f"{pre}answer_{lb}"] = ex.answers[keep, j, k]
            for r, name in enumerate(self.regimes):
                cols[f"{pre}p_{name}"] = P[keep, j, r]
            cols[f"{pre}regime"] = np.asarray(self.regimes, dtype=object)[P[keep, j].argmax(-1)]
            cols[f"{pre}raw"] = raw[keep, j]
            cols[f"{pre}position"] = pos[keep, j]
            cols[f"{pre}chart_first"] = np.array([t.isoformat() for t in first_bar], dtype=object)
            cols[f"{pre}chart_last"] = np.array([t.isoformat() for t in index], dtype=object)
        trace = pd.DataFrame(cols, index=index)
        if multi:
            weights = pd.DataFrame(pos[keep], index=index, columns=pd.Index(assets, name="asset"))
        else:
            weights = pd.Series(pos[keep, 0], index=index, name="weight")
        return Decision(weights, trace)
