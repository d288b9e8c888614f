"""The language models behind the experts: DREX's own tokenizer and tiny Llama, and loading any HF causal LM.

The embedded default is a real Hugging Face model folder (``config.json``, ``model.safetensors``,
``tokenizer.json``, ``tokenizer_config.json``, ``generation_config.json``) loadable by
``AutoModelForCausalLM`` / ``AutoTokenizer`` and servable by vllm:

* tokenizer: byte-level BPE trained with ``tokenizers`` on the prompt/answer language (prompts of the four
  styles over the bundled training data plus every answer string), digits split one per token (as Llama 3 and
  Qwen2 do), special tokens ``<pad>`` (0), ``<s>`` (1, prepended to every text), ``</s>`` (2, ends answers).
  Byte-level: any text encodes (no unknown token) and decoding round-trips exactly.
* model: ``LlamaForCausalLM`` (``DEFAULT_ARCH``), head_dim 32 (vllm's CPU attention needs >= 32), tied
  embeddings.

:func:`load_model` loads a local folder or a hub id (``hf:owner/name`` or anything that is not a local path),
including a peft LoRA adapter folder (``adapter_config.json``) on its base model. Heavy imports (torch,
transformers) happen inside the functions.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_ARCH",
    "build_tokenizer",
    "checkpoint_identity",
    "load_model",
    "load_tokenizer",
    "new_model",
    "save_model",
]

DEFAULT_ARCH: dict[str, Any] = {
    "hidden_size": 128,
    "intermediate_size": 384,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 256,
}
SPECIALS = ("<pad>", "<s>", "</s>")


def build_tokenizer(corpus: Iterable[str], *, vocab_size: int = 384):
    """Train DREX's byte-level BPE tokenizer on ``corpus`` -> ``PreTrainedTokenizerFast`` (left padding).

    Deterministic for a given corpus (BPE merges are ordered by count, then lexically).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIALS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   padding_side="left")
    return fast


def new_model(tokenizer, *, arch: str = "llama", seed: int = 0, **overrides):
    """A randomly initialized ``LlamaForCausalLM`` (``arch="llama"``) or ``Qwen2ForCausalLM`` (``"qwen2"``)
    sized by :data:`DEFAULT_ARCH` (``overrides`` win), vocabulary and special ids from ``tokenizer``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    kinds = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM)}
    if arch not in kinds:
        raise ValueError(f"arch must be one of {', '.join(kinds)}, got {arch!r}")
    cfg_cls, model_cls = kinds[arch]
    sizes = {**DEFAULT_ARCH, **overrides}
    head_dim = sizes["hidden_size"] // sizes["num_attention_heads"]
    if head_dim < 32:
        raise ValueError(f"head_dim = hidden_size / num_attention_heads = {head_dim} < 32: vllm's CPU attention "
                         "rejects it; use fewer heads or a wider model")
    cfg = cfg_cls(vocab_size=len(tokenizer), tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
                  bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **sizes)
    torch.manual_seed(seed)
    model = model_cls(cfg)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model.eval()


def save_model(model, tokenizer, path: str | os.PathLike, *, extra: dict[str, Any] | None = None) -> Path:
    """Write a loadable HF folder atomically (temp folder + rename): safetensors weights, config, tokenizer,
    and ``drex.json`` (``extra``: provenance such as the training command)."""
    from transformers.utils import logging as hf_logging

    from backtest.atomic import staged_dir

    path = Path(path)
    with staged_dir(path) as tmp:
        bars_on = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # no "Writing model shards" bar
        try:
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
        finally:
            if bars_on:
                hf_logging.enable_progress_bar()
        if extra is not None:
            (tmp / "drex.json").write_text(json.dumps(extra, indent=2, sort_keys=True) + "\n")
    return path


def _is_local(ref: str) -> bool:
    return not ref.startswith("hf:") and Path(ref).expanduser().exists()


def resolve_local(ref: str) -> Path:
    """A local model folder for ``ref``: the path itself, or the hub snapshot of ``hf:owner/name`` (taken from
    the local Hugging Face cache when offline)."""
    if _is_local(ref):
        return Path(ref).expanduser().resolve()
    repo = ref.removeprefix("hf:")
    if "/" not in repo:
        raise FileNotFoundError(f"model {ref!r} is neither a local folder nor a hub id (owner/name); give a path "
                                "to a folder with config.json, or hf:owner/name")
    from huggingface_hub import snapshot_download

    offline = os.environ.get("DREX_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1"
    return Path(snapshot_download(repo, local_files_only=offline))


def checkpoint_identity(folder: str | os.PathLike) -> str:
    """A content hash of a model folder (weights, config, tokenizer, adapter files; and the base model's for
    an adapter): the decision cache's key part, computed without importing torch."""
    folder = Path(folder)
    h = hashlib.sha256()
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and (
        p.suffix in (".safetensors", ".json", ".model", ".txt") and p.name != "drex.json"))
    if not names:
        raise FileNotFoundError(f"{folder} holds no model files (config.json, *.safetensors); is it a model "
                                "folder written by `drex train experts` or save_pretrained?")
    for name in names:
        h.update(name.encode())
        with (folder / name).open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    adapter = folder / "adapter_config.json"
    if adapter.is_file():
        base = json.loads(adapter.read_text()).get("base_model_name_or_path")
        if base:
            h.update(checkpoint_identity(resolve_local(str(base))).encode())
    return h.hexdigest()[:32]


def load_tokenizer(folder: str | os.PathLike):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    tok.padding_side = "left"
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(ref: str | os.PathLike, *, device: str = "cpu", dtype: str = "float32"):
    """``(model, tokenizer)`` from a local folder or hub id; a peft adapter folder loads on its base model.

    ``dtype``: float32 | bfloat16 | float16. The model is in eval mode on ``device``.
    """
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    folder = resolve_local(str(ref))
    bars_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no "Loading weights" bar on the CLI
    try:
        return _load(folder, device, dtype, torch, AutoModelForCausalLM)
    finally:
        if bars_on:
            hf_logging.enable_progress_bar()


def _load(folder: Path, device: str, dtype: str, torch, AutoModelForCausalLM):
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    adapter = folder / "adapter_config.json"
    if adapter.is_file():
        from peft import PeftModel

        base_ref = json.loads(adapter.read_text())["base_model_name_or_path"]
        base = AutoModelForCausalLM.from_pretrained(str(resolve_local(base_ref)), dtype=torch_dtype)
        model = PeftModel.from_pretrained(base, str(folder))
        tok_dir = folder if (folder / "tokenizer_config.json").is_file() else resolve_local(base_ref)
    else:
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch_dtype)
        tok_dir = folder
    return model.to(device).eval(), load_tokenizer(tok_dir)
