"""Helpers for faust processors that build data products from other data products.

* :mod:`~mesh_stream.processing.codec` — Confluent-framed Avro for faust's raw topics;
* product topics, schemas and descriptors: :mod:`mesh_stream.registration` (the one home);
* :mod:`~mesh_stream.processing.rekey` — read input products in batches, forward them re-keyed;
* :mod:`~mesh_stream.processing.windows` — tumbling event-time windows with a grace period;
* :mod:`~mesh_stream.processing.dedup` — count every event once despite duplicates and replays;
* :mod:`~mesh_stream.processing.app` — the faust app, the aggregate agent, keyed outputs.
"""
