"""Weight sync into a running vllm engine, in process, without a restart.

vllm mixes :class:`WorkerExtension` into each of its workers (``LLM(...,
worker_extension_cls="experts.vllm_sync.WorkerExtension")``); the trainer side writes the weights to a
safetensors file and asks every worker to load it::

    path = write_weights(trainer.policy_state_dict(), folder)     # or GRPOTrainer.export_policy(folder)
    llm.collective_rpc("drex_reload_weights", args=(str(path),))
    llm.reset_prefix_cache()                                      # cached prompt KV came from the old weights

A file path, not tensors: ``collective_rpc`` serializes its arguments for the engine process (tensors arrive
as lists), so the weights travel through the file system (a tmpfs in practice; the tiny experts' 2.2 MB take
milliseconds). The worker loads them with ``model_runner.reload_weights(weights_iterator=...)``, vllm's
in-place reload that maps checkpoint names (``model.layers.0.self_attn.q_proj.weight``, the Hugging Face
names of ``model.state_dict()``) onto its fused, possibly repacked parameters; ``model.load_weights`` alone
fails on CPU once weights were repacked. This module imports no vllm: the class is a plain mixin.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["WorkerExtension", "write_weights"]


def write_weights(state_dict: Mapping[str, object], folder: str | os.PathLike) -> Path:
    """Write ``state_dict`` (name -> tensor) to ``<folder>/model.safetensors`` (+ ``policy.json``) atomically,
    the format of :meth:`rl.trainer.GRPOTrainer.export_policy`; returns the weights file. Tensors that share
    memory (tied embeddings: ``lm_head.weight`` is ``model.embed_tokens.weight``) are written as copies."""
    from rl.checkpoint import export_policy

    seen: set[int] = set()
    flat = {}
    for name, t in state_dict.items():
        t = t.detach().cpu()
        ptr = t.untyped_storage().data_ptr()
        flat[name] = t.clone() if ptr in seen else t
        seen.add(ptr)
    export_policy(folder, flat, {"writer": "experts.vllm_sync"})
    return Path(folder) / "model.safetensors"


class WorkerExtension:
    """Methods vllm adds to its worker class (``self`` is the worker: ``model_runner``, ``vllm_config``)."""

    def drex_reload_weights(self, path: str) -> int:
        """Load the safetensors file ``path`` into the served model in place; returns the tensors read."""
        from safetensors.torch import load_file
        from vllm.config import set_current_vllm_config

        weights = load_file(str(path))
        with set_current_vllm_config(self.vllm_config):
            self.model_runner.reload_weights(weights_iterator=iter(weights.items()))
            _retie_lm_head(self.model_runner.get_model(), self.vllm_config.model_config.hf_config)
        return len(weights)


def _retie_lm_head(model, hf_config) -> bool:
    """Tie ``lm_head`` to the new input embeddings again after a reload; True when the model ties them.

    The loader skips ``lm_head.weight`` of a tied model, so the in-place reload finds nothing to load into the
    LM head and puts its previous tensor back ("ParallelLMHead: Failed to load weights"): without this the
    engine keeps scoring with the OLD output embedding (greedy answers may still agree; log-probabilities do
    not). On CPU the head's GEMM works on a packed copy of its weight, so it is re-packed too
    (``process_weights_after_loading``)."""
    text = hf_config.get_text_config() if hasattr(hf_config, "get_text_config") else hf_config
    lm_head = getattr(model, "lm_head", None)
    embed = getattr(getattr(model, "model", None), "embed_tokens", None)
    if not getattr(text, "tie_word_embeddings", False) or lm_head is None or embed is None:
        return False
    lm_head.weight = embed.weight
    method = getattr(lm_head, "quant_method", None)
    if method is not None and hasattr(method, "process_weights_after_loading"):
        method.process_weights_after_loading(lm_head)
    return True
