"""Tiny real models for the expert tests: DREX's tokenizer on a small corpus, random Llama / Qwen2 configs."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def geometric_bars(n: int = 130, r: float = 1.02) -> pd.DataFrame:
    """Daily bars whose close grows by ``r`` each bar: every feature has a closed form."""
    idx = pd.bdate_range("2020-01-01", periods=n, tz="UTC", name="timestamp")
    close = 100.0 * r ** np.arange(n)
    bars = pd.DataFrame({"open": close / r, "high": close * 1.01, "low": close * 0.99, "close": close,
                         "volume": np.full(n, 1000.0)}, index=idx)
    bars.attrs["symbol"] = "GEO"
    return bars


def random_bars(n: int = 260, seed: int = 0, symbol: str = "RND") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    idx = pd.bdate_range("2015-01-01", periods=n, tz="UTC", name="timestamp")
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0003, 0.012, n)))
    opens = close * np.exp(rng.normal(0, 0.003, n))
    high = np.maximum(opens, close) * (1 + rng.uniform(0, 0.01, n))
    low = np.minimum(opens, close) * (1 - rng.uniform(0, 0.01, n))
    bars = pd.DataFrame({"open": opens, "high": high, "low": low, "close": close,
                         "volume": rng.uniform(1e5, 2e5, n)}, index=idx)
    bars.attrs["symbol"] = symbol
    return bars


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """DREX's byte-level BPE (digits split) trained on prompts of random bars."""
    from experts.answers import answer_strings
    from experts.lm import build_tokenizer
    from experts.prompts import STYLES, build_prompts

    bars = random_bars(300, seed=1)
    corpus = [t for s in STYLES for t in build_prompts(s, bars).text[::3, 0]] + answer_strings() * 5
    return build_tokenizer(corpus, vocab_size=400)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_tokenizer):
    """A saved tiny random Llama expert folder (config.json, model.safetensors, tokenizer.json)."""
    from experts.lm import new_model, save_model

    model = new_model(tiny_tokenizer, seed=0, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2)
    return save_model(model, tiny_tokenizer, tmp_path_factory.mktemp("models") / "llama")
