"""The LLM expert decision-maker: prompts -> batched generation (or the decision cache) -> exposures.

``TrendExpert(checkpoint="default").decide(bars, start=0)`` builds one prompt per (bar, asset) for rows
``start..T-1`` (:mod:`experts.prompts`), looks every prompt up in the decision cache (:mod:`experts.cache`),
generates the missing answers in batches through the chosen backend (:mod:`experts.backends`), parses them
(:mod:`experts.answers`) and returns ``Decision(weights, trace)``: weight = exposure / N (the 1/N sleeves of
the rule-based strategies), trace per bar = prompt, answer text, parsed exposure, malformed flag (columns
``ASSET/prompt`` ... on several assets).

Checkpoints: ``"default"`` is the model shipped in ``experts/checkpoints/<style>/``; a local path is a run
folder written by ``drex train experts`` (``<run>/model``, or ``<run>/<style>/model`` for ``--expert all``) or
any HF model / peft adapter folder; ``hf:owner/name`` is a hub model. The checkpoint's identity (a content hash,
no torch needed) is computed in the constructor; the model itself is loaded on the first cache miss, once per
process (a fully cached backtest never imports torch).
"""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from backtest.decisions import Decision, DecisionMaker, Param
from experts.backends import BACKENDS, DecodeSettings

__all__ = [
    "EXPERTS",
    "BreakoutExpert",
    "Expert",
    "PositioningExpert",
    "ReversalExpert",
    "TrendExpert",
    "resolve_checkpoint",
]

_LOADED: dict[tuple, Any] = {}  # (folder, backend, device, dtype, batch) -> backend, once per process


def default_checkpoint(style: str) -> Path:
    """The shipped model folder of ``style`` (package data)."""
    from importlib.resources import files

    return Path(str(files("experts") / "checkpoints" / style))


def _is_model_folder(p: Path) -> bool:
    return (p / "config.json").is_file() or (p / "adapter_config.json").is_file()


def resolve_checkpoint(checkpoint: str, style: str) -> str:
    """The model folder (or ``hf:`` hub id) that ``checkpoint`` names for ``style``; errors name the fix."""
    if checkpoint == "default":
        folder = default_checkpoint(style)
        if not _is_model_folder(folder):
            raise FileNotFoundError(f"the default {style} expert checkpoint is missing from {folder}; reinstall "
                                    f"DREX or train one with `drex train experts --expert {style}`")
        return str(folder)
    if checkpoint.startswith("hf:"):
        return checkpoint
    p = Path(checkpoint).expanduser()
    if p.is_dir():
        for cand in (p / style / "model", p / "model", p / style, p):
            if _is_model_folder(cand):
                return str(cand.resolve())
        raise FileNotFoundError(f"checkpoint {checkpoint!r} holds no model for the {style} expert (looked for "
                                f"{style}/model/, model/ and config.json); pass a run folder of `drex train "
                                "experts` or a Hugging Face model folder")
    raise FileNotFoundError(f"checkpoint {checkpoint!r} is not 'default', an existing folder or hf:owner/name")


def _device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


GENERATE_CHUNK = 1024
"""Prompts generated (and stored in the decision cache) per step of :meth:`Expert.answer`."""


@contextlib.contextmanager
def _progress(total: int, what: str):
    """``advance(n)``: a progress bar on stderr when it is a terminal and more than one chunk is to be answered
    (a cold 10-year backtest), silent otherwise."""
    if total <= GENERATE_CHUNK or not sys.stderr.isatty():
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(what, total=total)
        yield lambda n: bar.advance(task, n)


class Expert(DecisionMaker):
    """Base class of the four LLM experts (subclasses set ``style``)."""

    style: ClassVar[str] = ""
    params: ClassVar[dict[str, Param]] = {
        "checkpoint": Param("default", doc="'default' (shipped), a run folder of `drex train experts`, a HF "
                            "model/adapter folder, or hf:owner/name"),
        "backend": Param("transformers", choices=BACKENDS, doc="generation backend"),
        "device": Param("cpu", doc="cpu, cuda, cuda:N or auto"),
        "dtype": Param("float32", choices=("float32", "bfloat16", "float16"), doc="model weights dtype"),
        "batch_size": Param(64, low=1, high=65536, doc="prompts per generation batch"),
        "temperature": Param(0.0, low=0.0, high=5.0, doc="0 = greedy decoding; > 0 samples (seeded)"),
        "seed": Param(0, doc="sampling seed (temperature > 0)"),
        "constrained": Param(True, doc="constrain answers to the exposure grid (else malformed = flat)"),
        "free_tokens": Param(0, low=0, high=512, doc="rationale tokens allowed before the answer"),
        "cache": Param(True, doc="use the on-disk decision cache ($DREX_HOME/cache/decisions)"),
    }
    warmup: int = 0

    def __init__(self, **params: Any) -> None:
        merged = {k: p.default for k, p in type(self).params.items()}
        merged.update(params)
        unknown = set(merged) - set(type(self).params)
        if unknown:
            raise KeyError(f"expert:{self.style} has no parameter(s) {sorted(unknown)}; valid: "
                           f"{', '.join(type(self).params)}")
        super().__init__(**merged)
        self.config = merged
        self.folder = resolve_checkpoint(str(merged["checkpoint"]), self.style)
        if self.folder.startswith("hf:"):
            from experts.lm import resolve_local

            self.folder = str(resolve_local(self.folder))
        from experts.lm import checkpoint_identity

        self.identity = checkpoint_identity(self.folder)
        self.settings = DecodeSettings(temperature=float(merged["temperature"]), seed=int(merged["seed"]),
                                       constrained=bool(merged["constrained"]),
                                       free_tokens=int(merged["free_tokens"]))
        self.stats = {"generated": 0, "cached": 0, "malformed": 0}

    # ------------------------------------------------------------------ pieces
    def prompt_options(self) -> dict[str, Any]:
        """Keyword options of :func:`experts.prompts.build_prompts` taken from the parameters."""
        return {}

    def backend(self):
        """The generation backend, loaded on first use and kept for the process."""
        from experts.backends import make_backend

        c = self.config
        device = _device(str(c["device"]))
        key = (self.folder, c["backend"], device, c["dtype"], int(c["batch_size"]))
        if key not in _LOADED:
            _LOADED[key] = make_backend(str(c["backend"]), self.folder, device=device, dtype=str(c["dtype"]),
                                        batch_size=int(c["batch_size"]))
        return _LOADED[key]

    def answer(self, prompts: list[str]) -> list[tuple[str, float, bool]]:
        """``(answer text, exposure, malformed)`` per prompt: cached rows are looked up, the rest generated
        (each distinct prompt once) and stored."""
        from experts.answers import parse_answer
        from experts.cache import CachedAnswer, DecisionCache, decision_key

        # answers differ by numerics too: the backend and the weights' dtype are part of the key
        settings = {**self.settings.to_dict(), "backend": self.config["backend"], "dtype": self.config["dtype"]}
        keys = [decision_key(self.identity, settings, p) for p in prompts]
        use_cache = bool(self.config["cache"])
        cache = DecisionCache() if use_cache else None
        found = cache.get_many(keys) if cache is not None else {}
        todo = list({k: p for k, p in zip(keys, prompts) if k not in found}.items())
        with _progress(len(todo), f"{self.name}: answering") as advance:
            for i in range(0, len(todo), GENERATE_CHUNK):  # stored chunk by chunk: an interrupt keeps the done
                part = todo[i:i + GENERATE_CHUNK]
                texts = self.backend().generate([p for _, p in part], self.settings)
                new = {}
                for (k, _), text in zip(part, texts):
                    exposure, malformed = parse_answer(text, levels=self.settings.levels)
                    new[k] = CachedAnswer(text, exposure, malformed)
                if cache is not None:
                    cache.put_many(new.items())
                found.update(new)
                advance(len(part))
        self.stats["generated"] += len(todo)
        self.stats["cached"] += len(prompts) - len(todo)
        out = [found[k] for k in keys]
        self.stats["malformed"] += sum(a.malformed for a in out)
        return [(a.answer, a.exposure, a.malformed) for a in out]

    # ------------------------------------------------------------------ the contract
    def decide(self, bars, *, start: int = 0) -> Decision:
        """Decisions for rows ``start..T-1`` (row t from bars ``0..t`` only): ``Decision(weights, trace)``.

        weights: ``(R,)`` Series (single asset) or ``(R, N)`` DataFrame, exposure / N; trace: ``prompt``,
        ``answer``, ``exposure``, ``malformed`` (``ASSET/<name>`` columns on several assets).
        """
        import pandas as pd

        from experts.prompts import build_prompts

        prompts = build_prompts(self.style, bars, start=start, **self.prompt_options())
        R, N = prompts.text.shape
        answers = self.answer(list(prompts.text.ravel()))
        text = np.array([a[0] for a in answers], dtype=object).reshape(R, N)
        exposure = np.array([a[1] for a in answers], dtype=np.float64).reshape(R, N)
        malformed = np.array([a[2] for a in answers], dtype=bool).reshape(R, N)
        multi = isinstance(bars.columns, pd.MultiIndex)
        index = prompts.index
        if multi:
            weights = pd.DataFrame(exposure / N, index=index, columns=pd.Index(prompts.assets, name="asset"))
            cols: dict[str, Any] = {}
            for j, asset in enumerate(prompts.assets):
                cols[f"{asset}/prompt"] = prompts.text[:, j]
                cols[f"{asset}/answer"] = text[:, j]
                cols[f"{asset}/exposure"] = exposure[:, j]
                cols[f"{asset}/malformed"] = malformed[:, j]
            trace = pd.DataFrame(cols, index=index)
        else:
            weights = pd.Series(exposure[:, 0], index=index, name="weight")
            trace = pd.DataFrame({"prompt": prompts.text[:, 0], "answer": text[:, 0], "exposure": exposure[:, 0],
                                  "malformed": malformed[:, 0]}, index=index)
        return Decision(weights, trace)


class TrendExpert(Expert):
    """LLM trend expert: multi-horizon returns, moving-average gap and slopes, ADX -> target exposure."""

    style = "trend"
    # SMA(100) and its slope over 5 bars need 105; Wilder's ADX(14) needs ~150 before its rounded value stops
    # depending on where the history starts (tests/experts/test_prompts.py)
    warmup = 150


class ReversalExpert(Expert):
    """LLM reversal expert: RSI, Bollinger z, distance from the mean, RSI events -> target exposure."""

    style = "reversal"
    # Wilder's RSI(14) and the ages of the latest RSI events: ~150 bars before the prompt no longer depends on
    # where the history starts (60 bars gave the full-history prompt on 55-73% of bars)
    warmup = 150


class BreakoutExpert(Expert):
    """LLM breakout expert: distance to the Donchian channel, volume surge, range compression, channel events."""

    style = "breakout"
    warmup = 60  # 10- vs 50-bar range; the previous 20-bar channel and volume mean (21); the latest events


class PositioningExpert(Expert):
    """LLM positioning expert: realized volatility, drawdown, current exposure and risk budget -> exposure."""

    style = "positioning"
    warmup = 252  # drawdown from the 252-bar high; realized volatility over 20 returns (21)
    params: ClassVar[dict[str, Param]] = {
        **Expert.params,
        "risk_budget": Param(0.15, low=0.01, high=2.0, doc="target annual volatility written in the prompt"),
    }

    def prompt_options(self) -> dict[str, Any]:
        return {"risk_budget": float(self.config["risk_budget"])}


EXPERTS: dict[str, type[Expert]] = {
    cls.style: cls for cls in (TrendExpert, ReversalExpert, BreakoutExpert, PositioningExpert)
}
