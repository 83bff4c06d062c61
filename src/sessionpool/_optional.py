"""Checks that the optional packages a command needs are installed, naming the extra that
installs them. Imports nothing optional itself (it only looks the modules up)."""

from __future__ import annotations

import importlib.util

from .errors import Error

__all__ = ["MissingExtra", "require"]


class MissingExtra(Error, ImportError):
    """A feature needs packages of an extra that is not installed."""


def require(feature: str, extra: str, *modules: str) -> None:
    """Raise unless every module can be imported.

    Args:
        feature: what needs them, for the message (``"sessionpool top"``).
        extra: the extra that installs them (``"cli"``).
        modules: top-level module names.
    Raises:
        MissingExtra: one is missing; the message says what to install.
    """
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingExtra(
            f"{feature} needs {', '.join(missing)}: pip install 'sessionpool[{extra}]'"
        )
