"""Where the files of `config/` are when the gateway runs from an installed wheel rather than a checkout.

`config/` is data, not a Python package: the wheel ships it as data files under
`<prefix>/share/helpdesk-gateway/config/` (pyproject.toml, `[tool.setuptools.data-files]`), the checkout has it
at the top of the tree. A relative path in the configuration (`config/prompts`) is used as it is when it exists
from the working directory, else the same file is taken from the installed or checked-out copy.
"""

from __future__ import annotations

import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1] / "config"
INSTALLED = Path(sys.prefix) / "share" / "helpdesk-gateway" / "config"


def config_root() -> Path:
    """The shipped `config/` directory: the checkout's, else the installed one."""
    return CHECKOUT if CHECKOUT.is_dir() else INSTALLED


def shipped(path: Path | str) -> Path:
    """`path` when it exists (or is absolute); else, for a `config/…` path, the shipped copy of it."""
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    parts = p.parts
    if parts and parts[0] == "config":
        candidate = config_root().joinpath(*parts[1:])
        if candidate.exists():
            return candidate
    return p
