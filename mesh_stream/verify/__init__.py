"""`mesh verify`: a processor run through kills and rebalances on a throwaway Kafka, its final
outputs compared with a recomputation by its own pure functions (see :mod:`.harness`)."""

from __future__ import annotations

from mesh_stream.verify.harness import VerifyOptions, VerifyResult, load_processor, verify

__all__ = ["VerifyOptions", "VerifyResult", "load_processor", "verify"]
