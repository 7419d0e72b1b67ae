"""The names that differ between the Python versions we support (3.10 to 3.13), in one place."""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    from typing import Self, Unpack
else:  # Python 3.10
    from typing_extensions import Self, Unpack

__all__ = ["Self", "Unpack"]
