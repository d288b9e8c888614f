"""router.charts: pixel semantics against hand-computed rows, a per-bar reference, and no look-ahead."""

from __future__ import annotations

import numpy as np
import pytest

from router.charts import CHANNELS, COLORS, render, save_png, to_rgb

UP, DOWN, WICK, VOL = range(4)

# three bars; window lo = 100 (bar 0's low), hi = 200 (bar 1's high). With 60 rows and a 10-row volume pane the
# price pane has P = 50 rows, so level(p) = floor((p - 100) / 100 * 50) = floor((p - 100) / 2), row = 49 - level.
BARS = np.array(
    [
        # open, high, low, close, volume
        [
            110.0,
            150.0,
            100.0,
            140.0,
            50.0,
        ],  # up:   body levels 5..20 -> rows 29..44; wick 0..25 -> rows 24..49
        [180.0, 200.0, 120.0, 130.0, 100.0],  # down: body 15..40 -> rows 9..34; wick 10..49 (200 -> 50 -> 49)
        [150.0, 160.0, 140.0, 150.0, 25.0],  # doji (up): body 25 -> row 24; wick 20..30 -> rows 19..29
    ]
)


def rows(column: np.ndarray) -> list[int]:
    return np.flatnonzero(column).tolist()


def span(a: int, b: int) -> list[int]:
    return list(range(a, b + 1))


def hand_chart(**kw) -> np.ndarray:
    return render(BARS, [2], window=4, height=60, volume_rows=10, **kw)[0]


def test_bodies_wicks_and_volume_match_hand_computed_rows():
    img = hand_chart()
    assert img.shape == (4, 60, 4) and img.dtype == np.uint8 and set(np.unique(img)) == {0, 255}
    assert not img[:, :, 0].any()  # slot 0 would be bar -1: blank
    # bar 0 (slot 1), up
    assert rows(img[UP, :50, 1]) == span(29, 44) and not img[DOWN, :, 1].any()
    assert rows(img[WICK, :50, 1]) == span(24, 49)
    # bar 1 (slot 2), down
    assert rows(img[DOWN, :50, 2]) == span(9, 34) and not img[UP, :, 2].any()
    assert rows(img[WICK, :50, 2]) == span(0, 39)
    # bar 2 (slot 3), doji: one row, in the up channel
    assert rows(img[UP, :50, 3]) == [24] and rows(img[WICK, :50, 3]) == span(19, 29)
    # volume pane rows 50..59: floor(10 * v / 100 + 0.5) = 5, 10, 3 rows from the bottom
    assert rows(img[VOL, :, 1]) == span(55, 59)
    assert rows(img[VOL, :, 2]) == span(50, 59)
    assert rows(img[VOL, :, 3]) == span(57, 59)
    assert not img[:3, 50:].any() and not img[VOL, :50].any()  # each channel stays in its pane


def test_bar_width_fills_the_slot_and_wick_takes_the_middle_column():
    img = hand_chart(bar_width=3)
    assert img.shape == (4, 60, 12)
    for col in (3, 4, 5):  # bar 0 = slot 1 = columns 3..5
        assert rows(img[UP, :, col]) == span(29, 44) and rows(img[VOL, :, col]) == span(55, 59)
    assert rows(img[WICK, :, 4]) == span(24, 49) and not img[WICK, :, [3, 5]].any()
    narrow = hand_chart()
    np.testing.assert_array_equal(img[[UP, DOWN, VOL]][:, :, 3::3], narrow[[UP, DOWN, VOL]][:, :, 1:])
    np.testing.assert_array_equal(img[WICK][:, 4::3], narrow[WICK][:, 1:])


def test_float32_is_the_same_picture_in_0_1():
    img = hand_chart(dtype=np.float32)
    assert img.dtype == np.float32
    np.testing.assert_array_equal(img, hand_chart() / 255.0)


def test_left_padding_and_flat_window():
    img = render(BARS, [0], window=4, height=60, volume_rows=10)[0]
    assert not img[:, :, :3].any()  # only bar 0 exists: it fills the range alone
    assert rows(img[UP, :, 3]) == span(0, 49)[49 - 40 : 49 - 10 + 1]  # levels floor(10/50*50)=10 .. 40
    assert rows(img[WICK, :, 3]) == span(0, 49) and rows(img[VOL, :, 3]) == span(50, 59)
    flat = np.tile([5.0, 5.0, 5.0, 5.0, 0.0], (3, 1))  # hi == lo: level P // 2 = 25 -> row 24; no volume
    img = render(flat, [2], window=3, height=60, volume_rows=10)[0]
    assert all(rows(img[UP, :, j]) == [24] and rows(img[WICK, :, j]) == [24] for j in range(3))
    assert not img[VOL].any()


def random_bars(t: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, t)))
    open_ = close * np.exp(rng.normal(0, 0.01, t))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.01, t)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.01, t)))
    volume = rng.lognormal(10, 1, t)
    volume[rng.random(t) < 0.05] = 0.0
    return np.column_stack([open_, high, low, close, volume])


def reference(
    x: np.ndarray, t: int, window: int, height: int, volume_rows: int, bar_width: int
) -> np.ndarray:
    """The documented layout, drawn bar by bar with Python loops."""
    p = height - volume_rows
    img = np.zeros((4, height, window * bar_width), dtype=np.uint8)
    first = max(0, t - window + 1)
    lo, hi = x[first : t + 1, 2].min(), x[first : t + 1, 1].max()
    vmax = x[first : t + 1, 4].max()

    def row(price: float) -> int:
        level = p // 2 if hi == lo else min(int(np.floor((price - lo) / (hi - lo) * p)), p - 1)
        return p - 1 - level

    for j in range(window):
        b = t - (window - 1) + j
        if b < 0:
            continue
        o, h, low, c, v = x[b]
        cols = slice(j * bar_width, (j + 1) * bar_width)
        img[UP if c >= o else DOWN, row(max(o, c)) : row(min(o, c)) + 1, cols] = 255
        img[WICK, row(h) : row(low) + 1, j * bar_width + bar_width // 2] = 255
        k = int(np.floor(volume_rows * v / vmax + 0.5)) if vmax > 0 else 0
        if k:
            img[VOL, height - k :, cols] = 255
    return img


@pytest.mark.parametrize(("window", "height", "volume_rows", "bar_width"), [(64, 64, 16, 1), (20, 37, 0, 3)])
def test_batched_equals_reference_and_one_at_a_time(window, height, volume_rows, bar_width):
    x = random_bars(150, seed=1)
    kw = {"window": window, "height": height, "volume_rows": volume_rows, "bar_width": bar_width}
    batch = render(x, **kw, chunk=7)  # chunks of 7 charts: boundaries inside the batch
    assert batch.shape == (150, 4, height, window * bar_width)
    np.testing.assert_array_equal(batch, render(x, **kw))
    for t in range(150):
        np.testing.assert_array_equal(batch[t], reference(x, t, **kw), err_msg=f"chart {t}")
    for t in (0, 1, 19, 63, 64, 149):
        np.testing.assert_array_equal(batch[t], render(x, [t], **kw)[0])
    ends = np.array([149, 3, 3, 77])
    np.testing.assert_array_equal(render(x, ends, **kw), batch[ends])


def test_bars_after_t_are_never_drawn():
    x = random_bars(200, seed=2)
    charts = render(x)
    for t in (0, 30, 120, 198):
        changed = x.copy()
        changed[t + 1 :] *= np.random.default_rng(t).uniform(0.5, 2.0, (200 - t - 1, 1))  # valid, different
        changed[t + 1 :, 1] *= 3.0  # far higher highs after t
        after = render(changed, np.arange(t + 1))
        np.testing.assert_array_equal(after, charts[: t + 1])  # bit-identical
        assert not np.array_equal(render(changed, [t + 1]), charts[[t + 1]])  # the change does show at t+1


def test_dataframe_input_and_bad_input():
    import markets

    bars = markets.load("synth:regimes?seed=1&n=80")
    np.testing.assert_array_equal(render(bars, [79]), render(bars.to_numpy(), [79]))
    multi = markets.load("sample:AAPL,JPM", "2020-01-01", "2020-03-01")
    with pytest.raises(ValueError, match="single-asset bars"):
        render(multi)
    x = random_bars(10, seed=0)
    with pytest.raises(ValueError, match=r"position 10, outside the 10 bars \[0, 9\]"):
        render(x, [3, 10])
    bad = x.copy()
    bad[4, 1] = np.nan
    with pytest.raises(ValueError, match="bars row 4 has NaN"):
        render(bad)
    with pytest.raises(ValueError, match="volume_rows must be an int in"):
        render(x, volume_rows=64)
    with pytest.raises(ValueError, match="dtype"):
        render(x, dtype=np.float64)


def test_png_is_the_same_picture_larger_and_coloured(tmp_path):
    from PIL import Image

    img = hand_chart()
    path = save_png(tmp_path / "sub" / "chart.png", img, scale=8)
    with Image.open(path) as png:
        assert png.size == (4 * 8, 60 * 8) and png.mode == "RGB"
        rgb = np.asarray(png)
    np.testing.assert_array_equal(rgb, to_rgb(img, scale=8))
    # slot 1 (bar 0): up body at chart rows 29..44 -> pixel rows 232..359, columns 8..14 (15 is the gap)
    assert (rgb[232:360, 8:15] == COLORS["up_body"]).all() and (
        rgb[232:360, 15] == COLORS["background"]
    ).all()
    assert (rgb[24 * 8 : 29 * 8, 11] == COLORS["wick"]).all()  # wick above the body, middle pixel column
    assert (rgb[24 * 8 : 29 * 8, 8] == COLORS["background"]).all()
    assert (rgb[55 * 8 :, 8:15] == COLORS["volume"]).all() and (rgb[:, :8] == COLORS["background"]).all()
    assert list(tmp_path.glob("sub/.*tmp")) == []  # written atomically, no temp file left
    assert len(CHANNELS) == 4
