"""Where a model's files start inside its prepared folder: DJL Serving's rule for one wrapping folder.

The SageMaker guides pack a model folder with `tar.add("code_container", arcname="code_container")`, so the
archive holds a single top-level folder and `serving.properties` / `model.py` sit one level down. SageMaker's
LMI / DJL Serving container serves such data from the inner folder: DJL's `Utils.getNestedModelDir` lists the
model directory, drops every name that starts with `.` (`.DS_Store`, macOS `._*` files, `.git`, ...) and,
when exactly one entry is left and it is a folder (a symlink to one counts), uses that folder instead.

modelhost applies the same rule once (it does not recurse; DJL's function does not either). Nothing but
dot-names is ignored: `__MACOSX/` is an entry like any other, so a folder beside it is not descended into,
as on DJL. Two entries, a folder and a file, a lone file, or an empty folder: the folder is used as it is.

    root = model_root(prepared_folder)   # the folder itself, or its lone non-hidden subfolder
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

HIDDEN_PREFIX = "."


def is_hidden(name: str) -> bool:
    """DJL's test for an entry it skips when looking for a lone subfolder: the name starts with '.'."""
    return name.startswith(HIDDEN_PREFIX)


def lone_folder(entries: Iterable[tuple[str, bool]]) -> str | None:
    """The name of the only non-hidden entry when that entry is a folder, else None.

    `entries` are (name, is_folder) pairs for the top of a model folder; it is read only as far as needed.
    """
    only: tuple[str, bool] | None = None
    for entry in entries:
        if is_hidden(entry[0]):
            continue
        if only is not None:
            return None  # a second visible entry: the folder is the model root itself
        only = entry
    if only is None or not only[1]:
        return None
    return only[0]


def model_root(folder: Path) -> Path:
    """`folder`, or its lone non-hidden subfolder when that is all it holds (DJL Serving's rule).

    Raises OSError when `folder` cannot be listed.
    """
    with os.scandir(folder) as listing:
        # DirEntry.is_dir follows symlinks, as Java's Files.isDirectory does in DJL.
        name = lone_folder((entry.name, entry.is_dir()) for entry in listing)
    return folder / name if name is not None else folder
