"""Files written so that an interruption never leaves half of one, and the JSON files of a run folder.

Every file the project writes whole (run folders and their checkpoints, JSON files and plots,
translations, exports) goes through `atomic_path`: the content is written under a hidden
temporary name in the same folder and renamed into place only when it is complete, so a reader
sees the old file or the new one, never a mixture, and Ctrl-C at any moment leaves nothing
half-written. The logs that grow line by line (metrics.csv, train.log, TensorBoard's event
files) are appended to instead; a resumed run drops the rows of metrics.csv after its checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sequencer.errors import DataError


@contextmanager
def atomic_path(path: Path, replace: bool = True) -> Iterator[Path]:
    """A temporary path beside `path` to write a file or folder to, renamed to `path` when the block ends.

    If the block fails, the temporary file or folder is removed and `path` is left as it was. The
    temporary name keeps `path`'s suffix, which some writers (Keras, matplotlib) read the format from.
    A folder replacing a folder is renamed into place after the old one is moved aside, which is
    deleted last: `path` is missing for a moment, but never half-written. A symbolic link at
    `path` is replaced itself; what it pointed to stays as it was. With `replace` False, a `path`
    that exists when the block ends (another process wrote it meanwhile) is kept, and what the
    block wrote is discarded: the first writer wins, and nobody's reader sees a file change.
    """
    temporary = path.with_name(f".{path.stem}.{socket.gethostname()}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield temporary
        if not replace:
            try:  # neither puts anything over what exists, but an empty folder
                os.rename(temporary, path) if temporary.is_dir() else os.link(temporary, path)
            except OSError:
                if not path.exists():
                    raise
        elif temporary.is_dir() and path.is_dir():  # os.replace cannot put a folder over a folder
            old = path.with_name(f".{path.stem}.{os.getpid()}.old{path.suffix}")
            os.replace(path, old)
            os.replace(temporary, path)
            if old.is_symlink():
                old.unlink()
            else:
                shutil.rmtree(old)
        else:
            os.replace(temporary, path)
    finally:
        if temporary.is_dir():
            shutil.rmtree(temporary, ignore_errors=True)
        else:
            temporary.unlink(missing_ok=True)


def unwritable_reason(folder: Path) -> str | None:
    """Why this process cannot write in `folder`, or make it with its missing parents; None if it can.

    Tried rather than judged from permissions (which say yes to root everywhere, /proc included):
    a hidden folder is made in `folder`, or in its nearest parent that exists, and removed.
    """
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".sequencer-probe-", dir=existing))
    except OSError as error:
        return f"cannot write in {existing} ({error.strerror or error})"
    return None


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` as UTF-8, atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def write_json(path: Path, data: object) -> None:
    write_atomically(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def read_json(path: Path) -> dict:
    """The JSON object in `path`; DataError naming the file if it is missing or not a JSON object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path} is missing") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object")
    return data
