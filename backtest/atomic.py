"""Outputs written all or nothing: temp files in the target folders, renamed into place at the end.

``StagedFiles`` collects the files of one output (a report folder, a sweep's CSV and JSON): each is written
to a temporary file next to its final path (same folder, so the rename is atomic); ``commit()`` renames them
all (``os.replace``); any error before that removes every temporary file and the folders it created. A crash,
a full disk or a file-size limit therefore never leaves a truncated file, and an existing file is replaced
only by a complete one::

    with StagedFiles() as stage:
        stage.write_text(out / "metrics.json", text)
        frame.to_csv(stage.path(out / "equity.csv"))   # any writer: write to the temp path it returns
    # committed here; on an exception nothing new is left behind
"""
from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Self

__all__ = ["StagedFiles", "staged_dir", "write_text_atomic"]


class StagedFiles:
    """Files staged in their final folders and committed together (module doc)."""

    def __init__(self) -> None:
        self._staged: list[tuple[Path, Path]] = []  # (temporary, final)
        self._made: list[Path] = []  # folders this stage created, outermost first

    def _folder(self, folder: Path) -> None:
        missing = []
        for parent in [folder, *folder.parents]:
            if parent.exists():
                break
            missing.append(parent)
        for path in reversed(missing):
            path.mkdir()
            self._made.append(path)

    def path(self, final: str | os.PathLike) -> Path:
        """A new temporary file path in ``final``'s folder (created if missing) for a writer to fill; it
        becomes ``final`` at ``commit()``."""
        final = Path(final)
        if final.is_dir():
            raise IsADirectoryError(21, "Is a directory", str(final))
        self._folder(final.parent)
        for _ in range(100):
            tmp = final.parent / f".{final.name[:80]}.{secrets.token_hex(6)}.tmp"
            try:  # mode 0o666 minus the umask, as a plain open() would create it (mkstemp makes 0o600)
                os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
                break
            except FileExistsError:
                continue
        self._staged.append((tmp, final))
        return tmp

    def write_text(self, final: str | os.PathLike, text: str) -> Path:
        """Stage ``text`` (UTF-8) for ``final``."""
        self.path(final).write_text(text, encoding="utf-8")
        return Path(final)

    def write_bytes(self, final: str | os.PathLike, data: bytes) -> Path:
        """Stage ``data`` for ``final``."""
        self.path(final).write_bytes(data)
        return Path(final)

    def commit(self) -> list[Path]:
        """Rename every staged file into place; returns the final paths."""
        done = []
        try:
            for tmp, final in self._staged:
                os.replace(tmp, final)
                done.append(final)
        except BaseException:
            self.discard()
            raise
        self._staged, self._made = [], []
        return done

    def discard(self) -> None:
        """Remove the staged temporary files and the folders this stage created (if left empty)."""
        for tmp, _ in self._staged:
            with contextlib.suppress(OSError):
                tmp.unlink()
        for folder in reversed(self._made):
            with contextlib.suppress(OSError):
                folder.rmdir()
        self._staged, self._made = [], []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (temp file in the same folder, then ``os.replace``)."""
    with StagedFiles() as stage:
        stage.write_text(path, text)
    return Path(path)


@contextlib.contextmanager
def staged_dir(path: str | os.PathLike) -> Iterator[Path]:
    """A folder written all or nothing (a model, a checkpoint): yields a temporary sibling folder to fill; on
    success it replaces ``path`` (the old folder is moved aside first, then removed), its mode that of a plain
    ``mkdir`` under the umask; on an error the temporary folder is removed and ``path`` is
    left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o777 & ~mask)  # as mkdir would make it (mkdtemp makes 0o700); the files are the writers'
        old = path.with_name(f".{path.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
