"""Pretrained vision(-language) models as the router's vision side: a Hugging Face model by folder or hub id,
frozen or LoRA-tuned (peft), under the same fusion transformer and heads as the small native ViT.

``RouterConfig(backbone="Qwen/Qwen2-VL-2B-Instruct", backbone_tune="lora")`` (or a local folder) makes
:class:`router.model.RouterNet` read each chart through the model instead of its own ViT:

* **vision-language models** (Qwen2-VL, Qwen2.5-VL, SmolVLM / Idefics3, ... anything
  ``AutoModelForImageTextToText`` loads): the chart as an RGB picture (:func:`router.charts.to_rgb`, enlarged
  ``image_scale`` times) plus a short text of the bar's numbers (:func:`feature_text`: returns, volatility,
  RSI, Bollinger z, ADX), formatted by the processor's chat template (or ``<image token> text`` without one);
  the last layer's hidden state at the last prompt token is the summary.
* **vision encoders** (SigLIP, CLIP: models with ``get_image_features``): the chart picture only; the pooled
  image embedding is the summary.

The summary goes through a linear projection into the fusion transformer in place of the vision [CLS]; the
temporal tokens, fusion and heads are the router's own. ``frozen``: the backbone's weights never change (only
the router's parts train; the checkpoint stores a reference to the backbone). ``lora``: rank-``lora_r``
adapters on ``lora_targets`` (peft), saved in the router checkpoint's ``adapter/`` folder.
Nothing is downloaded unless ``backbone`` is a hub id and the cache lacks it (``HF_HUB_OFFLINE=1`` forbids it).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from router.features import NOW_FEATURES

__all__ = ["HFBackbone", "feature_text"]

_TEXT_FEATURES = (("ret5", "return 5 bars", 100, "%"), ("ret20", "return 20 bars", 100, "%"),
                  ("ret60", "return 60 bars", 100, "%"), ("log_vol20", "volatility 20 bars", None, "%"),
                  ("rsi14", "RSI 14", 100, ""), ("bollinger_z20", "Bollinger z 20", 1, ""),
                  ("adx14", "ADX 14", 100, ""))


def feature_text(now: np.ndarray) -> list[str]:
    """One short text per row of raw now features ``(B, F)`` (:data:`router.features.NOW_FEATURES`)."""
    now = np.asarray(now, dtype=np.float64)
    out = []
    for row in now:
        parts = []
        for key, name, scale, unit in _TEXT_FEATURES:
            v = row[NOW_FEATURES.index(key)]
            if not np.isfinite(v):
                parts.append(f"{name} n/a")
                continue
            v = 100 * float(np.exp(v)) if scale is None else v * scale
            parts.append(f"{name} {v:+.1f}{unit}")
        out.append("Candlestick chart of the last bars. " + ", ".join(parts) + ". Market regime:")
    return out


class HFBackbone(nn.Module):
    """A Hugging Face model reading charts (module docstring). ``forward(charts, now) -> (B, hidden_size)``."""

    def __init__(self, config: Any) -> None:
        super().__init__()
        from transformers import AutoConfig

        source = config.backbone
        self.scale = int(config.image_scale)
        hf_config = AutoConfig.from_pretrained(source)
        model, self.kind = _load_model(source, hf_config)
        self.processor, self.image_processor, self.tokenizer = _processors(source, hf_config, self.kind)
        self.special = {k: getattr(hf_config, f"{k}_token_id", None) for k in ("image", "vision_start", "vision_end")}
        for p in model.parameters():
            p.requires_grad_(False)
        if config.backbone_tune == "lora":
            from peft import LoraConfig, get_peft_model

            targets = [t for t in config.lora_targets]
            model = get_peft_model(model, LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha,
                                                     target_modules=targets, lora_dropout=0.0))
        self.model = model
        self.hidden_size = _hidden_size(hf_config, self.kind)

    # ------------------------------------------------------------------------------------------ inputs
    def _pictures(self, charts: torch.Tensor) -> list[np.ndarray]:
        from router.charts import to_rgb

        return [to_rgb(c, scale=self.scale) for c in charts.detach().cpu().numpy()]

    def _prompts(self, texts: list[str]) -> list[str]:
        proc = self.processor
        if getattr(proc, "chat_template", None):
            return [proc.apply_chat_template([{"role": "user", "content": [{"type": "image"},
                                                                            {"type": "text", "text": t}]}],
                                             add_generation_prompt=False, tokenize=False) for t in texts]
        token = getattr(proc, "image_token", "<image>")
        return [f"{token}{t}" for t in texts]

    def _qwen_inputs(self, pictures: list[np.ndarray], texts: list[str]) -> dict[str, torch.Tensor]:
        """Qwen-VL inputs built from the image processor and the tokenizer (no processor class needed):
        ``<vision_start> <image> x n <vision_end> text`` with n = patches / merge_size^2, right-padded."""
        img = self.image_processor(images=pictures, return_tensors="pt")
        n_img = (img["image_grid_thw"].prod(-1) // self.image_processor.merge_size**2).tolist()
        sp = self.special
        rows = [[sp["vision_start"]] + [sp["image"]] * int(n) + [sp["vision_end"]]
                + self.tokenizer(t, add_special_tokens=False)["input_ids"] for n, t in zip(n_img, texts)]
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id or 0
        ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
        return {"input_ids": ids, "attention_mask": mask, "pixel_values": img["pixel_values"],
                "image_grid_thw": img["image_grid_thw"], "mm_token_type_ids": (ids == sp["image"]).long()}

    def forward(self, charts: torch.Tensor, now: torch.Tensor) -> torch.Tensor:
        """charts ``(B, 4, H, W)`` (0..255), now ``(B, F)`` raw features -> ``(B, hidden_size)`` float32."""
        device = next(self.model.parameters()).device
        pictures = self._pictures(charts)
        if self.kind == "vision":
            inputs = self.image_processor(images=pictures, return_tensors="pt")
            feats = self.model.get_image_features(pixel_values=inputs["pixel_values"].to(device))
            feats = getattr(feats, "pooler_output", feats)
            return feats.float()
        texts = feature_text(now.detach().cpu().numpy())
        if self.processor is not None:
            inputs = self.processor(images=[[p] for p in pictures], text=self._prompts(texts), return_tensors="pt",
                                    padding=True, return_mm_token_type_ids=True)
        else:
            inputs = self._qwen_inputs(pictures, texts)
        inputs = {k: v.to(device) for k, v in inputs.items() if isinstance(v, torch.Tensor)}
        out = self.model(**inputs, output_hidden_states=True, use_cache=False)
        hidden = out.hidden_states[-1]  # (B, T, D)
        mask = inputs["attention_mask"]  # (B, T); the last real token of each row (left or right padding)
        last = (mask * torch.arange(mask.shape[1], device=mask.device)).argmax(dim=1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last].float()

    # ------------------------------------------------------------------------------------------ adapter
    def save_adapter(self, path: str | Path) -> None:
        """The LoRA adapter (peft format: ``adapter_config.json`` + ``adapter_model.safetensors``)."""
        self.model.save_pretrained(str(path))

    def load_adapter(self, path: str | Path) -> None:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        weights = Path(path) / "adapter_model.safetensors"
        if not weights.is_file():
            raise FileNotFoundError(f"{path} holds no LoRA adapter (adapter_model.safetensors)")
        result = set_peft_model_state_dict(self.model, load_file(str(weights)))
        unexpected = getattr(result, "unexpected_keys", [])
        if unexpected:
            raise ValueError(f"{path}: adapter weights do not fit the backbone (unexpected {unexpected[:3]})")


def _load_model(source: str, hf_config: Any) -> tuple[nn.Module, str]:
    """(model, kind): ``vlm`` for image-text-to-text models, ``vision`` for image encoders."""
    from transformers import AutoModel, AutoModelForImageTextToText

    try:
        return AutoModelForImageTextToText.from_pretrained(source, dtype=torch.float32), "vlm"
    except ValueError:
        model = AutoModel.from_pretrained(source, dtype=torch.float32)
        if not callable(getattr(model, "get_image_features", None)):
            raise ValueError(  # noqa: TRY004 - a user's wrong model choice: one-line CLI error, exit 2
                f"backbone {source!r} ({type(model).__name__}) is neither an image-text-to-text model nor an image "
                "encoder with get_image_features (e.g. Qwen2-VL, SmolVLM, SigLIP)") from None
        return model, "vision"


def _processors(source: str, hf_config: Any, kind: str) -> tuple[Any, Any, Any]:
    """(processor, image processor, tokenizer): a vision encoder needs its image processor only; a VLM its
    processor, or (when the processor class cannot load, e.g. Qwen2-VL's needs torchvision for videos) the image
    processor and the tokenizer, for models with Qwen-VL image tokens."""
    from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer

    if kind == "vision":
        return None, AutoImageProcessor.from_pretrained(source), None
    try:
        return AutoProcessor.from_pretrained(source), None, None
    except (ImportError, ValueError, AttributeError, TypeError, OSError) as exc:
        needed = ("image_token_id", "vision_start_token_id", "vision_end_token_id")
        if not all(getattr(hf_config, k, None) is not None for k in needed):
            raise ValueError(f"cannot load the processor of backbone {source!r} ({type(exc).__name__}: {exc}); "
                             "install what it needs (e.g. torchvision) or save its processor with the model") from None
        return None, AutoImageProcessor.from_pretrained(source), AutoTokenizer.from_pretrained(source)


def _hidden_size(hf_config: Any, kind: str) -> int:
    if kind == "vlm":
        text = getattr(hf_config, "text_config", None)
        return int(getattr(text, "hidden_size", None) or hf_config.hidden_size)
    for attr in ("projection_dim",):
        if getattr(hf_config, attr, None):
            return int(getattr(hf_config, attr))
    vision = getattr(hf_config, "vision_config", hf_config)
    return int(vision.hidden_size)
