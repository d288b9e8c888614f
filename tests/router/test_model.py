"""router.model: shapes, batch invariance of inference, save/load round trip, normalization, config checks."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import markets
from router.charts import render
from router.features import NOW_FEATURES, temporal_inputs
from router.model import (
    RouterConfig,
    RouterNet,
    init_weights,
    load_router,
    parameter_count,
    route,
    save_router,
)

EXPERTS = ("trend", "reversal", "breakout", "positioning")


@pytest.fixture(scope="module")
def inputs():
    bars = markets.load("synth:regimes?seed=5&n=400")
    rows = np.arange(250, 400)
    chunks, now = temporal_inputs(bars, rows=rows)
    return render(bars, rows), chunks, now


@pytest.fixture(scope="module")
def net(inputs):
    torch.manual_seed(0)
    n = RouterNet(RouterConfig(experts=EXPERTS))
    init_weights(n, 0)
    n.set_normalization(inputs[1], inputs[2])
    return n


def test_forward_shapes_and_gradients(net, inputs):
    charts, chunks, now = (torch.as_tensor(a[:8]) for a in inputs)
    out = net(charts, chunks, now)
    assert out.logits.shape == (8, 4) and out.regime_logits.shape == (8, 4)
    (out.logits.logsumexp(-1).sum() + out.regime_logits.sum()).backward()
    grads = {n: p.grad for n, p in net.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert grads["patch_embed.weight"].abs().sum() > 0 and grads["chunk_embed.weight"].abs().sum() > 0
    net.zero_grad()
    assert 100_000 < parameter_count(net) < 1_000_000


def test_route_is_batch_invariant(net, inputs):
    """A sample's weights do not depend on which samples share its micro-batch (the look-ahead test needs
    bit-identical rows when the history is truncated)."""
    w, p = route(net, *inputs, batch=16)
    np.testing.assert_allclose(w.sum(1), 1.0, rtol=1e-12)
    for lo, hi in ((0, 150), (3, 40), (149, 150), (7, 131)):
        w2, p2 = route(net, *(a[lo:hi] for a in inputs), batch=16)
        np.testing.assert_array_equal(w2, w[lo:hi])
        np.testing.assert_array_equal(p2, p[lo:hi])


def test_temperature_sharpens_without_changing_the_order(net, inputs):
    w1, _ = route(net, *inputs)
    w2, _ = route(net, *inputs, temperature=0.25)
    np.testing.assert_array_equal(w1.argmax(1), w2.argmax(1))
    assert w2.max(1).mean() > w1.max(1).mean()
    with pytest.raises(ValueError, match="temperature"):
        route(net, *inputs, temperature=0.0)


def test_normalization_is_nan_aware(net, inputs):
    now = inputs[2]
    want = np.nanmean(now, axis=0)
    np.testing.assert_allclose(net.now_mean.numpy(), want, rtol=1e-5, atol=1e-7)
    assert net.now_std.shape == (len(NOW_FEATURES),)
    x = torch.as_tensor(now[:2]).clone()
    x[0, 0] = float("nan")
    z = RouterNet._standardize(x, net.now_mean, net.now_std)
    assert z[0, 0] == 0 and torch.isfinite(z).all()


def test_save_load_round_trip(net, inputs, tmp_path):
    path = save_router(net, tmp_path / "r", extra={"note": "x"})
    cfg = json.loads((path / "config.json").read_text())
    assert cfg["kind"] == "drex-router" and cfg["experts"] == list(EXPERTS) and cfg["extra"]["note"] == "x"
    back = load_router(path)
    np.testing.assert_array_equal(route(back, *inputs)[0], route(net, *inputs)[0])
    assert torch.equal(back.now_std, net.now_std)
    save_router(net, path)  # overwriting is atomic and leaves no temporary folders
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_load_errors_name_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="drex train router"):
        load_router(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"kind": "other"}))
    with pytest.raises(ValueError, match="not a DREX router"):
        load_router(tmp_path)


@pytest.mark.parametrize("bad, match", [({"experts": ()}, "at least one"), ({"patch": 7}, "patch=7"),
                                        ({"d_model": 30}, "multiple of heads"),
                                        ({"backbone_tune": "full"}, "frozen or lora")])
def test_config_checks(bad, match):
    kw = {"experts": EXPERTS, **bad}
    with pytest.raises(ValueError, match=match):
        RouterConfig(**kw)
    assert RouterConfig.from_dict(RouterConfig(experts=EXPERTS).to_dict()) == RouterConfig(experts=EXPERTS)
