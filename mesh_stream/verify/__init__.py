"""`mesh verify`: a processor run through kills and rebalances on a throwaway Kafka, its final
outputs compared with a recomputation by its own pure functions (see :mod:`.harness`).

The names below are loaded on first use: importing a light part of this package
(:mod:`.limits`, :mod:`.loading`) must not import the harness and its sandbox.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mesh_stream.verify.harness import VerifyOptions, VerifyResult, verify
    from mesh_stream.verify.loading import load_processor

__all__ = ["VerifyOptions", "VerifyResult", "load_processor", "verify"]

#: Name -> the module defining it.
_HOMES = {
    "VerifyOptions": "mesh_stream.verify.harness",
    "VerifyResult": "mesh_stream.verify.harness",
    "verify": "mesh_stream.verify.harness",
    "load_processor": "mesh_stream.verify.loading",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_HOMES[name]), name)
