"""The router network: a small vision transformer over the chart, a temporal encoder over the long-horizon
features, a fusion transformer, and two heads (regime, routing weights). Imports torch: load it lazily.

Layout (``RouterConfig`` defaults; B samples, one per (bar, asset)):

* **Vision**: the chart ``(B, 4, H, W)`` (:func:`router.charts.render`, values 0..255) is cut into
  ``(H / p) * (W / p)`` patches of ``4 * p * p`` pixels, embedded linearly, prefixed with a [CLS] token,
  given learned positions and read by ``vit_layers`` pre-norm transformer blocks. Or, with
  ``backbone`` set, a Hugging Face vision(-language) model reads the chart instead (:mod:`router.hf`) and its
  pooled state takes the place of the vision [CLS].
* **Temporal**: ``L`` chunk tokens ``(B, L, 5)`` and the now token ``(B, F)`` (:mod:`router.features`) are
  standardized with the training set's statistics (buffers of this module; NaN -> 0), embedded linearly with
  learned positions.
* **Fusion**: ``[FUSE] + vision [CLS] + L chunk tokens + now token`` with type embeddings through
  ``fusion_layers`` blocks.
* **Heads**: ``regime_logits = Linear(LN(FUSE))`` over ``regimes``; the routing head reads
  ``[LN(FUSE), softmax(regime_logits)]`` (the regime prior feeds the router, as in MM-ARC) through a
  2-layer MLP -> ``scores``, each expert's predicted reward over the next H bars in units of
  ``sigma sqrt(H)``; ``logits = scores / route_tau``; weights = ``softmax(logits / temperature)``.

``route`` runs inference in fixed-size, zero-padded micro-batches, so a sample's output never depends on
which other samples share its batch (the look-ahead test compares full and truncated histories bit for
bit).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from router.features import CHUNK_FEATURES, NOW_FEATURES

__all__ = ["FORMAT", "REGIMES", "RouterConfig", "RouterNet", "RouterOutput", "init_weights", "load_router",
           "parameter_count", "route",
           "save_router"]

FORMAT = 1
REGIMES: tuple[str, ...] = ("up", "down", "sideways", "breakout")
"""Default regime classes of the auxiliary head (docs/router.md: how synthetic and real labels map)."""


@dataclass(frozen=True)
class RouterConfig:
    """Everything that defines a router network (saved as ``config.json`` next to its weights)."""

    experts: tuple[str, ...]
    """the expert specs it routes over, in weight order (``router.experts.ExpertSpec.text``)"""
    regimes: tuple[str, ...] = REGIMES
    """classes of the regime head"""
    window: int = 64
    """bars per chart"""
    height: int = 64
    """chart pixel rows"""
    volume_rows: int = 16
    """rows of the chart's volume pane"""
    patch: int = 8
    """vision patch size (pixels; divides height and window)"""
    chunks: int = 21
    """chunk tokens of the temporal side"""
    chunk: int = 12
    """bars per chunk token (chunks * chunk = the long horizon, 252)"""
    baseline: int = 2520
    """bars of the volume baseline"""
    d_model: int = 64
    heads: int = 4
    vit_layers: int = 2
    fusion_layers: int = 2
    mlp_ratio: int = 2
    dropout: float = 0.1
    """dropout of the attention weights and of each block's residual branches (training only)"""
    backbone: str = "native"
    """"native" (the small ViT) or a Hugging Face model folder / hub id (router.hf)"""
    backbone_tune: str = "frozen"
    """HF backbone: frozen | lora"""
    image_scale: int = 4
    """HF backbone: the chart picture is enlarged this many times (64 x 64 -> 256 x 256)"""
    lora_r: int = 8
    lora_alpha: int = 16
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")
    route_tau: float = 0.1
    """routing logits = predicted expert scores / route_tau (the scores are normalized H-bar rewards)"""
    extra: dict[str, Any] = field(default_factory=dict)
    """free JSON: training summary, horizon, data (not read by the network)"""

    def __post_init__(self) -> None:
        if not self.experts:
            raise ValueError("RouterConfig.experts must list at least one expert")
        if self.height % self.patch or self.window % self.patch:
            raise ValueError(f"patch={self.patch} must divide height={self.height} and window={self.window}")
        if self.d_model % self.heads:
            raise ValueError(f"d_model={self.d_model} must be a multiple of heads={self.heads}")
        if not self.route_tau > 0:
            raise ValueError(f"route_tau must be > 0, got {self.route_tau}")
        if self.backbone_tune not in ("frozen", "lora"):
            raise ValueError(f"backbone_tune must be frozen or lora, got {self.backbone_tune!r}")

    @property
    def n_patches(self) -> int:
        return (self.height // self.patch) * (self.window // self.patch)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RouterConfig:
        known = {f.name for f in fields(cls)}
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in known}
        return cls(**kw)


class RouterOutput(NamedTuple):
    """``scores (B, K)``: each expert's predicted reward over the next H bars (in units of sigma sqrt(H));
    ``logits = scores / route_tau`` (B, K) over the experts; ``regime_logits (B, R)``."""

    logits: torch.Tensor
    regime_logits: torch.Tensor
    scores: torch.Tensor


class _Block(nn.Module):
    """Pre-norm transformer block: x + attn(LN x), then x + MLP(LN x)."""

    def __init__(self, d: int, heads: int, mlp_ratio: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, mlp_ratio * d), nn.GELU(), nn.Linear(mlp_ratio * d, d))
        self.dropout = dropout
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(D, dim=-1)  # each (B, T, D)
        q, k, v = (z.view(B, T, self.heads, D // self.heads).transpose(1, 2) for z in (q, k, v))  # (B, h, T, hd)
        a = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(B, T, D)))
        return x + self.drop(self.mlp(self.ln2(x)))


class RouterNet(nn.Module):
    """The router (module docstring). ``forward(charts, chunks, now) -> RouterOutput``."""

    def __init__(self, config: RouterConfig) -> None:
        super().__init__()
        c = self.config = config
        d, K, R = c.d_model, len(c.experts), len(c.regimes)
        L, Fn, Fc = c.chunks, len(NOW_FEATURES), len(CHUNK_FEATURES)
        self.register_buffer("chunk_mean", torch.zeros(Fc))
        self.register_buffer("chunk_std", torch.ones(Fc))
        self.register_buffer("now_mean", torch.zeros(Fn))
        self.register_buffer("now_std", torch.ones(Fn))
        self.backbone = None
        if c.backbone == "native":
            self.patch_embed = nn.Linear(4 * c.patch * c.patch, d)
            self.vis_cls = nn.Parameter(torch.zeros(1, 1, d))
            self.vis_pos = nn.Parameter(torch.randn(1, 1 + c.n_patches, d) * 0.02)
            self.vit = nn.ModuleList(_Block(d, c.heads, c.mlp_ratio, c.dropout) for _ in range(c.vit_layers))
            self.vis_ln = nn.LayerNorm(d)
        else:
            from router.hf import HFBackbone

            self.backbone = HFBackbone(c)
            self.backbone_proj = nn.Linear(self.backbone.hidden_size, d)
        self.chunk_embed = nn.Linear(Fc, d)
        self.chunk_pos = nn.Parameter(torch.randn(1, L, d) * 0.02)
        self.now_embed = nn.Linear(Fn, d)
        self.type_embed = nn.Parameter(torch.randn(4, d) * 0.02)  # fuse, vision, chunk, now
        self.fuse_cls = nn.Parameter(torch.zeros(1, 1, d))
        self.fusion = nn.ModuleList(_Block(d, c.heads, c.mlp_ratio, c.dropout) for _ in range(c.fusion_layers))
        self.ln_out = nn.LayerNorm(d)
        self.regime_head = nn.Linear(d, R)
        self.router_head = nn.Sequential(nn.Linear(d + R, d), nn.GELU(), nn.Linear(d, K))

    # -------------------------------------------------------------------------------------------- inputs
    def set_normalization(self, chunks: np.ndarray, now: np.ndarray) -> None:
        """Fit the standardization buffers on training inputs ``chunks (N, L, 5)``, ``now (N, F)`` (NaN ignored)."""
        for name, x in (("chunk", chunks.reshape(-1, chunks.shape[-1])), ("now", now)):
            mean = np.nanmean(x, axis=0)
            std = np.nanstd(x, axis=0)
            getattr(self, f"{name}_mean").copy_(torch.as_tensor(np.nan_to_num(mean), dtype=torch.float32))
            getattr(self, f"{name}_std").copy_(torch.as_tensor(np.where(std > 1e-8, std, 1.0), dtype=torch.float32))

    @staticmethod
    def _standardize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        z = (x - mean) / std
        return torch.nan_to_num(z, nan=0.0, posinf=8.0, neginf=-8.0).clamp(-8.0, 8.0)

    def _vision(self, charts: torch.Tensor, now: torch.Tensor) -> torch.Tensor:
        """``(B, 4, H, W)`` charts (and the raw now features, for a language backbone's text) -> ``(B, 1, d)``."""
        c = self.config
        if self.backbone is not None:
            return self.backbone_proj(self.backbone(charts, now)).unsqueeze(1)
        B = charts.shape[0]
        x = charts.float() / 255.0
        p = c.patch
        x = x.unfold(2, p, p).unfold(3, p, p)  # (B, 4, H/p, W/p, p, p)
        x = x.permute(0, 2, 3, 1, 4, 5).reshape(B, c.n_patches, 4 * p * p)  # (B, P, 4 p p)
        x = torch.cat([self.vis_cls.expand(B, -1, -1), self.patch_embed(x)], dim=1) + self.vis_pos  # (B, 1+P, d)
        for block in self.vit:
            x = block(x)
        return self.vis_ln(x[:, :1])  # (B, 1, d)

    def forward(self, charts: torch.Tensor, chunks: torch.Tensor, now: torch.Tensor) -> RouterOutput:
        """charts ``(B, 4, H, W)`` (0..255), chunks ``(B, L, 5)``, now ``(B, F)`` raw features (NaN allowed)."""
        B = charts.shape[0]
        te = self.type_embed
        vis = self._vision(charts, now) + te[1]  # (B, 1, d)
        ch = self.chunk_embed(self._standardize(chunks.float(), self.chunk_mean, self.chunk_std))
        ch = ch + self.chunk_pos + te[2]  # (B, L, d)
        nw = self.now_embed(self._standardize(now.float(), self.now_mean, self.now_std)).unsqueeze(1) + te[3]
        x = torch.cat([self.fuse_cls.expand(B, -1, -1) + te[0], vis, ch, nw], dim=1)  # (B, 3 + L, d)
        for block in self.fusion:
            x = block(x)
        h = self.ln_out(x[:, 0])  # (B, d)
        regime_logits = self.regime_head(h)  # (B, R)
        scores = self.router_head(torch.cat([h, regime_logits.softmax(-1)], dim=-1))  # (B, K)
        return RouterOutput(scores / self.config.route_tau, regime_logits, scores)


# ------------------------------------------------------------------------------------------------ inference
def route(net: RouterNet, charts: np.ndarray, chunks: np.ndarray, now: np.ndarray, *,
          temperature: float = 1.0, batch: int = 64,
          device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Weights ``(B, K)`` and regime probabilities ``(B, R)`` (float64) of ``B`` samples, without grad.

    Samples go through the network in micro-batches of exactly ``batch`` rows (the last one zero-padded), so
    every sample meets the same kernels whatever ``B`` is: a sample's output is a function of its own inputs.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    n = len(charts)
    K, R = len(net.config.experts), len(net.config.regimes)
    w_out, r_out = np.zeros((n, K)), np.zeros((n, R))
    was_training = net.training
    net.eval()
    try:
        with torch.inference_mode():
            for s in range(0, n, batch):
                e = min(s + batch, n)
                pad = batch - (e - s)
                parts = [np.asarray(a[s:e]) for a in (charts, chunks, now)]
                if pad:
                    parts = [np.concatenate([p, np.zeros((pad, *p.shape[1:]), p.dtype)]) for p in parts]
                t = [torch.as_tensor(p).to(device) for p in parts]
                out = net(t[0], t[1], t[2])
                w_out[s:e] = (out.logits.double() / temperature).softmax(-1)[: e - s].cpu().numpy()
                r_out[s:e] = out.regime_logits.double().softmax(-1)[: e - s].cpu().numpy()
    finally:
        net.train(was_training)
    return w_out, r_out


# --------------------------------------------------------------------------------------------- save / load
def save_router(net: RouterNet, path: str | os.PathLike, *, extra: dict[str, Any] | None = None) -> Path:
    """Write ``config.json`` + ``model.safetensors`` (+ ``adapter/`` for a LoRA backbone) into ``path``
    atomically (a temporary sibling folder, then a rename). Frozen HF backbones are referenced, not copied."""
    from safetensors.torch import save_file

    from backtest.atomic import staged_dir

    path = Path(path)
    with staged_dir(path) as tmp:
        cfg = net.config.to_dict()
        if extra:
            cfg["extra"] = {**cfg.get("extra", {}), **extra}
        (tmp / "config.json").write_text(json.dumps({"format": FORMAT, "kind": "drex-router", **cfg}, indent=2)
                                         + "\n", encoding="utf-8")
        state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()
                 if not k.startswith("backbone.")}
        save_file(state, str(tmp / "model.safetensors"))
        if net.backbone is not None and net.config.backbone_tune == "lora":
            net.backbone.save_adapter(tmp / "adapter")
    return path


def load_router(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> RouterNet:
    """A router saved by :func:`save_router` (never unpickles: JSON + safetensors)."""
    from safetensors.torch import load_file

    path = Path(path)
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise FileNotFoundError(f"{path} is not a router checkpoint (no config.json); pass a folder written by "
                                "`drex train router` (its model/ subfolder) or checkpoint=default")
    raw = json.loads(cfg_file.read_text(encoding="utf-8"))
    if raw.get("kind") != "drex-router" or raw.get("format") != FORMAT:
        raise ValueError(f"{cfg_file} is not a DREX router config of format {FORMAT} (kind={raw.get('kind')!r}, "
                         f"format={raw.get('format')!r})")
    config = RouterConfig.from_dict(raw)
    net = RouterNet(config)
    if net.backbone is not None and (path / "adapter").is_dir():
        net.backbone.load_adapter(path / "adapter")
    state = load_file(str(path / "model.safetensors"))
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("backbone.")]
    if missing or unexpected:
        raise ValueError(f"{path}: weights do not match the config (missing {missing[:5]}, unexpected "
                         f"{unexpected[:5]}); the checkpoint is corrupt or from another DREX version")
    return net.to(device).eval()


def parameter_count(net: nn.Module, *, trainable: bool = False) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad or not trainable)


def init_weights(net: RouterNet, seed: int) -> None:
    """Deterministic re-initialization of the native parts (Linear: N(0, 0.02), biases 0)."""
    g = torch.Generator().manual_seed(seed)
    for name, m in net.named_modules():
        if name.startswith("backbone.") or name == "backbone":
            continue
        if isinstance(m, nn.Linear):
            with torch.no_grad():
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.02)
                m.bias.zero_()
    with torch.no_grad():
        for pname in ("vis_pos", "chunk_pos", "type_embed"):
            if hasattr(net, pname):
                p = getattr(net, pname)
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)
        proj = [m for n, m in net.named_modules() if n.endswith(".proj") and not n.startswith("backbone")]
        for m in proj:  # GPT-2 style scaled init of residual projections
            m.weight.mul_(1.0 / math.sqrt(2 * max(1, len(proj))))
