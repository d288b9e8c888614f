"""A compact pure-torch inference forward of Llama / Qwen2 checkpoints, for fast CPU decoding of the experts.

Why it exists (speed only; ``transformers`` stays the reference and the training path): a cold 10-year expert
backtest on CPU spent more time importing and loading ``transformers`` (about 5 s of CPU, 10-25 s wall on a
busy machine) than deciding. This module reads the same Hugging Face folder (``config.json``,
``*.safetensors``, ``tokenizer.json``) with torch, safetensors and tokenizers only, and runs the forward with
fused projections (q|k|v in one matmul, gate|up in one), ``F.rms_norm`` and ``scaled_dot_product_attention``.
Its logits equal ``transformers``' to float tolerance and its greedy answers equal theirs (tests/experts/
test_native.py, on random Llama and Qwen2 models and on the shipped experts).

Supported (:func:`unsupported_reason` says why not otherwise; the backend then loads ``transformers``):
``LlamaForCausalLM`` / ``Qwen2ForCausalLM`` folders with SiLU MLPs, default RoPE (no scaling), full attention
(no sliding window), optional q/k/v/o/MLP biases, grouped-query attention, tied or separate LM head, no
quantization, no peft adapter.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["NativeLM", "NativeTokenizer", "load_native", "unsupported_reason"]

_ARCHS = {"LlamaForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2"}
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _rope_theta(cfg: dict[str, Any]) -> float:
    rp = cfg.get("rope_parameters") or {}
    return float(rp.get("rope_theta", cfg.get("rope_theta", 10000.0)))


def unsupported_reason(folder: str | os.PathLike) -> str | None:
    """Why the folder cannot run natively (None = it can)."""
    folder = Path(folder)
    if (folder / "adapter_config.json").is_file():
        return "a peft adapter"
    if not (folder / "config.json").is_file() or not (folder / "tokenizer.json").is_file():
        return "no config.json / tokenizer.json"
    if not list(folder.glob("*.safetensors")):
        return "no safetensors weights"
    cfg = json.loads((folder / "config.json").read_text())
    archs = cfg.get("architectures") or []
    if len(archs) != 1 or archs[0] not in _ARCHS or cfg.get("model_type") != _ARCHS[archs[0]]:
        return f"architecture {archs} / {cfg.get('model_type')!r}"
    if cfg.get("hidden_act", "silu") != "silu":
        return f"activation {cfg.get('hidden_act')!r}"
    rp = cfg.get("rope_parameters") or {}
    if cfg.get("rope_scaling") or rp.get("rope_type", "default") != "default":
        return "scaled RoPE"
    if cfg.get("use_sliding_window") or any(t != "full_attention" for t in cfg.get("layer_types") or []):
        return "sliding-window attention"
    if cfg.get("quantization_config"):
        return "a quantized checkpoint"
    if int(cfg.get("pretraining_tp", 1)) != 1:
        return "pretraining_tp != 1"
    return None


class NativeTokenizer:
    """The folder's ``tokenizer.json`` through ``tokenizers`` with the few methods the experts use (the same
    ids and texts as ``transformers.AutoTokenizer`` on the same folder: tested)."""

    def __init__(self, folder: str | os.PathLike) -> None:
        from tokenizers import Tokenizer

        folder = Path(folder)
        self._tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._tok.no_padding()
        self._tok.no_truncation()
        meta = {}
        for name in ("tokenizer_config.json", "special_tokens_map.json"):
            if (folder / name).is_file():
                meta = {**json.loads((folder / name).read_text()), **meta}

        def tid(key: str) -> int | None:
            tok = meta.get(key)
            if isinstance(tok, dict):
                tok = tok.get("content")
            return None if tok is None else self._tok.token_to_id(tok)

        self.bos_token_id, self.eos_token_id = tid("bos_token"), tid("eos_token")
        pad = tid("pad_token")
        self.pad_token_id = pad if pad is not None else self.eos_token_id

    def __len__(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def __call__(self, texts: list[str]) -> dict[str, list[list[int]]]:
        return {"input_ids": [e.ids for e in self._tok.encode_batch(list(texts))]}

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self._tok.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def batch_decode(self, rows, skip_special_tokens: bool = False) -> list[str]:
        return self._tok.decode_batch([[int(i) for i in r] for r in rows], skip_special_tokens=skip_special_tokens)


class NativeLM:
    """Llama / Qwen2 inference with a per-layer KV cache (lists of ``(k, v)`` tensors ``(B, kv_heads, L,
    head_dim)``). ``forward(ids (B, n), mask (B, L + n), positions (B, n), cache) -> logits (B, V)`` of the
    last position; the cache grows in place."""

    def __init__(self, folder: str | os.PathLike, *, device: str = "cpu", dtype: str = "float32") -> None:
        from safetensors.torch import load_file

        folder = Path(folder)
        why = unsupported_reason(folder)
        if why is not None:
            raise ValueError(f"{folder} cannot run on the native forward ({why}); load it with transformers")
        cfg = json.loads((folder / "config.json").read_text())
        self.config = cfg
        dt = _DTYPES[dtype]
        w: dict[str, torch.Tensor] = {}
        for f in sorted(folder.glob("*.safetensors")):
            w.update(load_file(str(f)))
        self.n_heads = int(cfg["num_attention_heads"])
        self.n_kv = int(cfg.get("num_key_value_heads") or self.n_heads)
        self.head_dim = int(cfg.get("head_dim") or cfg["hidden_size"] // self.n_heads)
        self.eps = float(cfg.get("rms_norm_eps", 1e-6))
        self.device = torch.device(device)

        def get(name: str) -> torch.Tensor | None:
            t = w.get(name)
            return None if t is None else t.to(device=self.device, dtype=dt).contiguous()

        def cat(names: list[str]) -> torch.Tensor | None:
            parts = [get(n) for n in names]
            return None if any(p is None for p in parts) else torch.cat(parts, 0).contiguous()

        self.embed = get("model.embed_tokens.weight")
        self.lm_head = get("lm_head.weight") if "lm_head.weight" in w else self.embed
        self.norm = get("model.norm.weight")
        self.layers = []
        for i in range(int(cfg["num_hidden_layers"])):
            p = f"model.layers.{i}."
            a, m = p + "self_attn.", p + "mlp."
            self.layers.append({
                "ln1": get(p + "input_layernorm.weight"), "ln2": get(p + "post_attention_layernorm.weight"),
                "qkv": cat([a + "q_proj.weight", a + "k_proj.weight", a + "v_proj.weight"]),
                "qkv_b": cat([a + "q_proj.bias", a + "k_proj.bias", a + "v_proj.bias"]),
                "o": get(a + "o_proj.weight"), "o_b": get(a + "o_proj.bias"),
                "gu": cat([m + "gate_proj.weight", m + "up_proj.weight"]),
                "gu_b": cat([m + "gate_proj.bias", m + "up_proj.bias"]),
                "down": get(m + "down_proj.weight"), "down_b": get(m + "down_proj.bias"),
            })
        self.dtype = dt
        d = self.head_dim
        self.inv_freq = 1.0 / (_rope_theta(cfg) ** (torch.arange(0, d, 2, dtype=torch.float) / d))
        self.inv_freq = self.inv_freq.to(self.device)
        self._rope: tuple[torch.Tensor, torch.Tensor] | None = None
        eos = cfg.get("eos_token_id")
        self.eos_ids = [eos] if isinstance(eos, int) else list(eos or [])

    @property
    def vocab_size(self) -> int:
        return int(self.lm_head.shape[0])

    def _cos_sin(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin ``(B, 1, n, head_dim)`` of ``positions (B, n)`` (tables grown on demand)."""
        need = int(positions.max()) + 1
        if self._rope is None or self._rope[0].shape[0] < need:
            n = max(need, 512)
            freqs = torch.arange(n, device=self.device, dtype=torch.float)[:, None] * self.inv_freq[None]
            emb = torch.cat((freqs, freqs), -1)
            self._rope = (emb.cos().to(self.dtype), emb.sin().to(self.dtype))
        cos, sin = self._rope
        return cos[positions][:, None], sin[positions][:, None]

    @staticmethod
    def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        rot = torch.cat((-x[..., half:], x[..., :half]), -1)
        return x * cos + rot * sin

    def new_cache(self, kv=None) -> list:
        """A cache, optionally filled with per-layer ``(k, v)`` (as :meth:`cache_tensors` returns them)."""
        return [list(p) for p in kv] if kv is not None else [None] * len(self.layers)

    @staticmethod
    def cache_tensors(cache: list) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [tuple(p) for p in cache]

    @torch.inference_mode()
    def forward(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: list) -> torch.Tensor:
        B, n = ids.shape
        L = mask.shape[1]  # cached + new positions
        x = F.embedding(ids, self.embed)
        cos, sin = self._cos_sin(positions)
        # query i (absolute index L - n + i) sees keys j <= L - n + i that are not padding, and always itself
        # (a padding query then attends to itself only and stays finite)
        q_idx = torch.arange(L - n, L, device=ids.device)[:, None]
        k_idx = torch.arange(L, device=ids.device)[None]
        allow = (mask.bool()[:, None, None, :] & (k_idx <= q_idx)) | (k_idx == q_idx)  # (B, 1, n, L)
        H, Hk, D = self.n_heads, self.n_kv, self.head_dim
        for i, lay in enumerate(self.layers):
            h = F.rms_norm(x, (x.shape[-1],), lay["ln1"], self.eps)
            qkv = F.linear(h, lay["qkv"], lay["qkv_b"])
            q, k, v = qkv.split((H * D, Hk * D, Hk * D), -1)
            q = self._rotate(q.view(B, n, H, D).transpose(1, 2), cos, sin)
            k = self._rotate(k.view(B, n, Hk, D).transpose(1, 2), cos, sin)
            v = v.view(B, n, Hk, D).transpose(1, 2)
            if cache[i] is not None:
                k = torch.cat((cache[i][0], k), 2)
                v = torch.cat((cache[i][1], v), 2)
            cache[i] = [k, v]
            if Hk != H:
                k, v = k.repeat_interleave(H // Hk, 1), v.repeat_interleave(H // Hk, 1)
            att = F.scaled_dot_product_attention(q, k, v, attn_mask=allow)
            x = x + F.linear(att.transpose(1, 2).reshape(B, n, H * D), lay["o"], lay["o_b"])
            h = F.rms_norm(x, (x.shape[-1],), lay["ln2"], self.eps)
            gate, up = F.linear(h, lay["gu"], lay["gu_b"]).chunk(2, -1)
            x = x + F.linear(F.silu(gate) * up, lay["down"], lay["down_b"])
        last = F.rms_norm(x[:, -1], (x.shape[-1],), self.norm, self.eps)
        return F.linear(last, self.lm_head)


def load_native(folder: str | os.PathLike, *, device: str = "cpu", dtype: str = "float32"):
    """``(NativeLM, NativeTokenizer)`` of a supported folder (:func:`unsupported_reason`)."""
    return NativeLM(folder, device=device, dtype=dtype), NativeTokenizer(folder)
