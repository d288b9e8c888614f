"""Crash-safe files for the trainer: checkpoints, the metrics log and exported policy weights.

Every write goes to a temporary name in the same directory, is flushed to disk (fsync) and then renamed over
the final name, so a crash or a full disk leaves either the old file or the new one, never a torn one.

Checkpoints (``<run_dir>/checkpoints/``): one directory per save, ``step-<rollout:08d>-<unique>/`` holding
``tensors.safetensors`` and ``state.json``. A save writes the directory under a hidden temporary name, fsyncs
its files and itself, renames it to its final name, THEN atomically replaces ``latest.json`` (the pointer) and
only after that deletes older directories (keeping the previous one). So ``latest.json`` always names a
complete checkpoint: a crash at any point leaves the pointer on the old, intact directory (plus garbage the
next save removes).

Tensor names (format 2): ``param.<name>`` for every trainable parameter (``named_parameters()`` names, or the
position ``<i>`` for a policy without names), ``opt.<name>.<state>`` for optimizer tensors (``exp_avg``...),
``rng.sample`` / ``rng.loss`` / ``rng.global`` / ``rng.cuda``. ``state.json`` lists ``param_names`` in order.
Format 1 (before names) stored ``param.<i>`` / ``opt.<i>.<state>`` by position; it still loads.

Exported policies (:func:`export_policy`): ``model.safetensors`` (the named state dict an inference engine
loads) and ``policy.json`` (written last, with the weights' byte size so a reader detects a torn pair).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "FORMAT",
    "append_line",
    "atomic_write_text",
    "export_policy",
    "latest_checkpoint",
    "load_exported_policy",
    "pack_optimizer",
    "read_checkpoint",
    "truncate_metrics",
    "unpack_optimizer",
    "write_checkpoint",
]

FORMAT = 2
_KEEP = 2  # the new checkpoint and the previous one
_POINTER = "latest.json"


# ------------------------------------------------------------------------------------------- files
def fsync_path(path: str | os.PathLike) -> None:
    """fsync a file or a directory (a directory's fsync makes the renames inside it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory + fsync + os.replace."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_path(path.parent)


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one complete line with one write + fsync: earlier lines are never touched, and a crash can at
    worst leave a partial LAST line, which :func:`truncate_metrics` drops on resume."""
    data = (line.rstrip("\n") + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def truncate_metrics(path: str | os.PathLike, max_step: int) -> None:
    """Keep the complete JSON lines of ``path`` with ``step <= max_step`` (drops lines written after the
    checkpoint being resumed and a partial last line left by a crash); atomic."""
    path = Path(path)
    kept = []
    if path.exists():
        for ln in path.read_text().splitlines():
            try:
                rec = json.loads(ln)
            except json.JSONDecodeError:
                continue  # a torn last line
            if isinstance(rec, dict) and rec.get("step", 0) <= max_step:
                kept.append(ln)
    atomic_write_text(path, "".join(ln + "\n" for ln in kept))


# ------------------------------------------------------------------------------------- checkpoints
def write_checkpoint(
    root: str | os.PathLike, stem: str, tensors: Mapping[str, torch.Tensor], state: Mapping[str, Any]
) -> Path:
    """Write a checkpoint directory ``<root>/<stem>-<unique>/`` and point ``latest.json`` at it (see the module
    doc for the order of operations); returns its path."""
    from safetensors.torch import save_file

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    previous = latest_checkpoint(root)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{stem}-", dir=root))
    save_file(dict(tensors), str(tmp / "tensors.safetensors"))
    (tmp / "state.json").write_text(json.dumps(dict(state), indent=2) + "\n")
    for f in ("tensors.safetensors", "state.json"):
        fsync_path(tmp / f)
    fsync_path(tmp)
    final = root / f"{stem}-{time.time_ns():x}"
    while final.exists():  # two saves within one clock tick
        final = root / f"{final.name}x"
    os.replace(tmp, final)
    fsync_path(root)
    atomic_write_text(root / _POINTER, json.dumps({"path": final.name}) + "\n")
    keep = {final.name} | ({previous.name} if previous is not None else set())
    for old in root.iterdir():
        if old.is_dir() and old.name not in keep and (old.name.startswith("step-") or old.name.startswith(".tmp-")):
            shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(root: str | os.PathLike) -> Path | None:
    """The checkpoint ``latest.json`` points at, or None when there is none."""
    pointer = Path(root) / _POINTER
    if not pointer.exists():
        return None
    return Path(root) / json.loads(pointer.read_text())["path"]


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, state) of one checkpoint directory."""
    from safetensors.torch import load_file

    path = Path(path)
    if not (path / "state.json").exists() or not (path / "tensors.safetensors").exists():
        raise FileNotFoundError(f"{path} is not a complete checkpoint (needs state.json and tensors.safetensors)")
    state = json.loads((path / "state.json").read_text())
    return load_file(str(path / "tensors.safetensors")), state


def pack_optimizer(
    optimizer: torch.optim.Optimizer, names: list[str]
) -> tuple[dict[str, torch.Tensor], dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Optimizer state by parameter name: (``opt.<name>.<state>`` tensors, JSON scalars per name, JSON param
    groups). ``names`` follows the optimizer's parameter order (one group or several, flattened)."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        name = names[int(pid)]
        for key, val in st.items():
            if isinstance(val, torch.Tensor):
                tensors[f"opt.{name}.{key}"] = val.detach().cpu().contiguous()
            else:
                scalars.setdefault(name, {})[key] = val
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, scalars, groups


def unpack_optimizer(
    optimizer: torch.optim.Optimizer,
    tensors: Mapping[str, torch.Tensor],
    state: Mapping[str, Any],
    names: list[str],
) -> None:
    """Restore what :func:`pack_optimizer` saved (format 2: by name) or what format 1 saved (by position)."""
    opt_state: dict[int, dict[str, Any]] = {}
    if state.get("format", 1) >= 2:
        index = {n: i for i, n in enumerate(names)}
        for key, val in tensors.items():
            if key.startswith("opt."):
                name, st = key[len("opt.") :].rsplit(".", 1)
                opt_state.setdefault(index[name], {})[st] = val
        for name, sc in state["optimizer_scalars"].items():
            opt_state.setdefault(index[name], {}).update(sc)
    else:
        for key, val in tensors.items():
            if key.startswith("opt."):
                _, pid, st = key.split(".", 2)
                opt_state.setdefault(int(pid), {})[st] = val
        for pid, sc in state["optimizer_scalars"].items():
            opt_state.setdefault(int(pid), {}).update(sc)
    groups = [
        {k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in state["optimizer_param_groups"]
    ]
    optimizer.load_state_dict({"state": opt_state, "param_groups": groups})


def check_param_names(path: Path, saved: Iterable[str], current: list[str]) -> None:
    """Fail with the missing/unexpected names when a checkpoint's parameters are not this policy's."""
    saved_set, cur_set = set(saved), set(current)
    if saved_set == cur_set:
        return
    missing = sorted(cur_set - saved_set)[:5]
    unexpected = sorted(saved_set - cur_set)[:5]
    raise ValueError(
        f"checkpoint {path} holds other parameters than this policy (missing: {missing or '-'}; unexpected: "
        f"{unexpected or '-'}); resume with the policy that wrote it or start a new run_dir"
    )


# ------------------------------------------------------------------------------------------ export
def export_policy(path: str | os.PathLike, state_dict: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> Path:
    """Write ``<path>/model.safetensors`` (the named weights) then ``<path>/policy.json`` (``meta`` plus the
    format, the weights file and its byte size), each atomically; returns ``path``."""
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    weights = path / "model.safetensors"
    fd, tmp = tempfile.mkstemp(prefix=".model.", suffix=".tmp", dir=path)
    os.close(fd)
    try:
        save_file({k: v.contiguous() for k, v in state_dict.items()}, tmp)
        fsync_path(tmp)
        os.replace(tmp, weights)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    info = {
        "format": 1,
        "weights": weights.name,
        "weights_bytes": weights.stat().st_size,
        "num_tensors": len(state_dict),
        **dict(meta),
    }
    atomic_write_text(path / "policy.json", json.dumps(info, indent=2) + "\n")
    return path


def load_exported_policy(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state_dict, meta) of a directory written by :func:`export_policy`; refuses a torn pair."""
    from safetensors.torch import load_file

    path = Path(path)
    meta = json.loads((path / "policy.json").read_text())
    weights = path / meta["weights"]
    if weights.stat().st_size != meta["weights_bytes"]:
        raise ValueError(
            f"{weights} has {weights.stat().st_size} bytes but policy.json says {meta['weights_bytes']}: "
            f"the export was interrupted; export again"
        )
    return load_file(str(weights)), meta
