"""A pool of training series addressed by one global row index, and their network inputs per minibatch.

Charts are rendered for the rows of each minibatch (``router.charts.render``: ~1 ms per 100 charts), never
stored: a 64x64x4 chart is 16 KB and the pool holds tens of thousands of rows.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from router.charts import render
from router.data import Series, realized_sigma

__all__ = ["Pool"]


class Pool:
    """Series concatenated along one row axis (``N`` rows in all, ``K`` experts).

    Attributes (all ``(N, ...)``): ``chunks``, ``now``, ``h`` (expert weights), ``rewards``, ``regime``,
    ``sigma`` (20-bar volatility), ``series_id``, ``t`` (row within its series).
    """

    def __init__(self, series: list[Series], *, window: int, height: int, volume_rows: int) -> None:
        if not series:
            raise ValueError("the pool needs at least one series")
        self.series = series
        self.window, self.height, self.volume_rows = window, height, volume_rows
        lengths = [s.n_bars for s in series]
        self.offsets = np.r_[0, np.cumsum(lengths)]
        self.chunks = np.concatenate([s.chunks for s in series])
        self.now = np.concatenate([s.now for s in series])
        self.h = np.concatenate([s.h for s in series])
        self.rewards = np.concatenate([s.rewards for s in series])
        self.regime = np.concatenate([s.regime for s in series])
        self.sigma = np.concatenate([realized_sigma(s.ohlcv) for s in series])
        self.series_id = np.concatenate([np.full(n, i) for i, n in enumerate(lengths)])
        self.t = np.concatenate([np.arange(n) for n in lengths])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def rows_of(self, i: int, local: np.ndarray) -> np.ndarray:
        """Global rows of series ``i``'s local rows."""
        return self.offsets[i] + np.asarray(local, dtype=np.int64)

    def charts(self, rows: np.ndarray) -> np.ndarray:
        """``(B, 4, H, W)`` uint8 charts of global ``rows`` (in the given order)."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), 4, self.height, self.window), dtype=np.uint8)
        sid = self.series_id[rows]
        for i in np.unique(sid):
            sel = np.flatnonzero(sid == i)
            out[sel] = render(self.series[i].ohlcv, self.t[rows[sel]], window=self.window, height=self.height,
                              volume_rows=self.volume_rows)
        return out

    def inputs(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(charts, chunks, now)`` of global ``rows``."""
        rows = np.asarray(rows, dtype=np.int64)
        return self.charts(rows), self.chunks[rows], self.now[rows]

    def tensors(self, rows: Any, device: Any = "cpu"):
        """``inputs`` as torch tensors on ``device``."""
        import torch

        return tuple(torch.as_tensor(a).to(device) for a in self.inputs(np.asarray(rows)))
