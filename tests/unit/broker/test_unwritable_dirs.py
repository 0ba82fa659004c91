"""Data and cache folders the launcher cannot write: an error naming the setting, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesh_stream.broker.cluster import LocalCluster
from mesh_stream.broker.distribution import KafkaDistribution
from mesh_stream.errors import ConfigurationError


def test_data_dir_below_a_file_names_mesh_data_dir(tmp_path: Path) -> None:
    distribution = KafkaDistribution("9.9.9", tmp_path / "cache")
    distribution.libs_dir.mkdir(parents=True)
    (distribution.libs_dir / "kafka_2.13-9.9.9.jar").write_bytes(b"")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    cluster = LocalCluster(distribution, blocker / "broker")
    with pytest.raises(ConfigurationError) as raised:
        cluster.start(port=0, timeout=5)
    assert str(raised.value) == (
        f"cannot prepare the broker's data folder {blocker / 'broker'} (Not a directory); "
        "pick a writable one with --data-dir or MESH_DATA_DIR"
    )


def test_cache_dir_below_a_file_names_mesh_cache_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    distribution = KafkaDistribution("9.9.9", blocker / "cache")
    partial = distribution.home / "libs.partial"
    with pytest.raises(ConfigurationError) as raised:
        distribution.fetch()
    assert str(raised.value) == (
        f"cannot create the Kafka jar cache {partial} (Not a directory); "
        "point MESH_CACHE_DIR at a writable folder"
    )
