"""Manifests of the files DREX writes for learned models, so that only those files are ever loaded.

SB3 model files (``.zip``) contain pickles (cloudpickle'd objects, ``torch.save`` archives): loading one runs
code. DREX therefore writes, next to every model it saves, ``manifest.json``: the SHA-256 of each file and an
HMAC-SHA256 signature of that list under a key that never leaves this machine (``DREX_MANIFEST_KEY`` from the
environment, else ``$DREX_HOME/keys/manifest.key``, 32 random bytes created on first use with mode 0600).

* ``write_manifest(folder, files, kind=...)`` hashes and signs (atomically).
* ``verify(folder, files, signed=True)`` refuses, with one line naming the file and the fix, a folder without
  a manifest, a file whose hash differs, a file the manifest does not list, and (``signed=True``) a manifest
  not signed with this machine's key (a model someone else wrote). Anything that unpickles must call it with
  ``signed=True`` first; the pairs decision-maker loads only safetensors and JSON (no pickle), whose hashes it
  checks without requiring the signature, so that the model shipped with DREX loads everywhere.

stdlib only.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["FORMAT", "MANIFEST", "manifest_key", "sha256", "verify", "write_manifest"]

FORMAT = "drex.manifest/1"
MANIFEST = "manifest.json"


def manifest_key() -> bytes:
    """This machine's signing key: ``DREX_MANIFEST_KEY`` (text) or ``$DREX_HOME/keys/manifest.key``."""
    env = os.environ.get("DREX_MANIFEST_KEY")
    if env:
        return env.encode()
    from markets.home import data_home

    path = Path(data_home("keys")) / "manifest.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # O_EXCL: never overwrite a key
        with os.fdopen(fd, "wb") as fh:
            fh.write(os.urandom(32))
    return path.read_bytes()


def sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _payload(kind: str, files: dict[str, str]) -> bytes:
    return json.dumps({"format": FORMAT, "kind": kind, "files": files}, sort_keys=True).encode()


def write_manifest(folder: str | os.PathLike, files: list[str], *, kind: str) -> Path:
    """Hash ``files`` (names inside ``folder``), sign the list and write ``folder/manifest.json`` atomically."""
    folder = Path(folder)
    hashes = {name: sha256(folder / name) for name in sorted(files)}
    sig = hmac.new(manifest_key(), _payload(kind, hashes), hashlib.sha256).hexdigest()
    text = json.dumps({"format": FORMAT, "kind": kind, "files": hashes, "signature": sig}, indent=2) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=".manifest.", dir=folder)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, folder / MANIFEST)
    return folder / MANIFEST


def verify(folder: str | os.PathLike, files: list[str], *, kind: str, signed: bool = True) -> dict[str, Any]:
    """Check ``files`` in ``folder`` against its manifest (module docstring); returns the manifest."""
    folder = Path(folder)
    fix = "load only models written by `drex train dqn` on this machine (retrain, or pass model=default)"
    try:
        man = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        listed, sig = dict(man["files"]), str(man["signature"])
    except FileNotFoundError:
        raise ValueError(f"{folder} has no {MANIFEST}: not a model DREX wrote; {fix}") from None
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{folder / MANIFEST} is corrupt; {fix}") from None
    if man.get("format") != FORMAT or man.get("kind") != kind:
        raise ValueError(f"{folder / MANIFEST} is a {man.get('kind')!r} manifest, not {kind!r}; {fix}")
    for name in files:
        if name not in listed:
            raise ValueError(f"{folder / name} is not listed in its manifest; {fix}")
        path = folder / name
        if not path.is_file():
            raise ValueError(f"{path} is missing; {fix}")
        if not hmac.compare_digest(sha256(path), listed[name]):
            raise ValueError(f"{path} was modified after DREX wrote it (SHA-256 differs from the manifest); {fix}")
    if signed:
        want = hmac.new(manifest_key(), _payload(kind, listed), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, sig):
            raise ValueError(f"{folder / MANIFEST} is not signed by this machine's DREX key, so its pickled files "
                             f"are not loaded; {fix}")
    return man
