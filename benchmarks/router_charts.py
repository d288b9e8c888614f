"""Charts rendered per second by ``router.charts.render``: batched vs one chart per call, uint8 vs float32.

    .venv/bin/python benchmarks/router_charts.py [--bars 20000 --repeats 5 --loop 1000 --out ...]

Data: ``markets.synthetic.regimes(bars, seed=0)`` daily bars. Each batched variant renders one chart per bar
(N = bars) in a single ``render`` call; the ``one at a time`` variant calls ``render(x, [t])`` for ``--loop``
bars (the cost of a Python loop over images, as a decision made bar by bar would pay). Time: median of
``--repeats`` runs after one warm-up run; output buffers are allocated inside the timed call (as a user
gets them). The PNG row times ``save_png`` at scale 8 (a 512x512 picture). Results go to
``benchmarks/results/router_charts.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VARIANTS = (  # name, render keywords
    ("64x64 uint8 (W=64, 1 px/bar)", {}),
    ("64x64 float32", {"dtype": np.float32}),
    ("64x128 uint8 (W=64, 2 px/bar)", {"bar_width": 2}),
    ("128x128 uint8 (W=64, 2 px/bar)", {"bar_width": 2, "height": 128, "volume_rows": 32}),
    ("32x32 uint8 (W=32)", {"window": 32, "height": 32, "volume_rows": 8}),
)


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up (page faults of the first large allocation, lookup tables)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--loop", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/router_charts.md")
    args = parser.parse_args(argv)

    from markets.synthetic import regimes
    from router.charts import render, save_png

    bars, _ = regimes(args.bars, seed=0)
    x = bars.to_numpy()  # (T, 5)
    load_before = os.getloadavg()[0]
    rows = []
    for name, kw in VARIANTS:
        dt = _median_time(lambda kw=kw: render(x, **kw), args.repeats)
        shape = render(x, [0], **kw).shape[1:]
        rows.append((f"batched {name}", args.bars, dt, args.bars / dt, shape))
        print(f"{rows[-1][0]}: {rows[-1][3]:,.0f} charts/s", flush=True)
    ends = np.linspace(0, args.bars - 1, args.loop).astype(int)
    dt = _median_time(lambda: [render(x, [t]) for t in ends], max(1, args.repeats // 2))
    rows.append(("one at a time 64x64 uint8", args.loop, dt, args.loop / dt, (4, 64, 64)))
    print(f"{rows[-1][0]}: {rows[-1][3]:,.0f} charts/s", flush=True)
    one = render(x, [args.bars - 1])[0]
    with tempfile.TemporaryDirectory() as tmp:
        n_png = 50
        dt = _median_time(lambda: [save_png(Path(tmp) / f"{i}.png", one) for i in range(n_png)], 3)
    rows.append(("save_png 64x64 -> 512x512 RGB", n_png, dt, n_png / dt, (512, 512, 3)))
    load_after = os.getloadavg()[0]

    batched, looped = rows[0][3], rows[-2][3]
    lines = [
        "# router.charts: candlestick charts rendered per second",
        "",
        (
            f"Command: `.venv/bin/python benchmarks/router_charts.py --bars {args.bars} --repeats {args.repeats} "
            f"--loop {args.loop}`"
        ),
        (
            f"Machine: {platform.machine()}, {os.cpu_count()} cores shared with the team, numpy {np.__version__}, "
            f"Python {platform.python_version()}; load average before {load_before:.2f}, after {load_after:.2f}."
        ),
        "",
        (
            "Data: `markets.synthetic.regimes` daily bars; each batched row is ONE `render` call drawing one chart "
            "per bar. Time: median of the repeats after a warm-up; output allocation included."
        ),
        "",
        "| variant | charts | chart shape (C, H, W) | time (s) | charts/s |",
        "| --- | ---: | --- | ---: | ---: |",
    ]
    for name, n, dt, rate, shape in rows:
        lines.append(f"| {name} | {n:,} | {tuple(shape)} | {dt:.3f} | {rate:,.0f} |")
    lines += [
        "",
        (
            f"Reading: batched 64x64 uint8 charts render at {batched:,.0f}/s (goal > 5,000/s), "
            f"{batched / looped:.0f}x the one-call-per-chart rate ({looped:,.0f}/s); float32 output (4x the bytes) "
            f"at {rows[1][3]:,.0f}/s. Timings are noisy (2 cores shared with other engineers' jobs): rerun on a "
            "quiet machine before quoting them."
        ),
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines))
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
