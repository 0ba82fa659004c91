"""MESH_GOVERNANCE_ROOT that names no folder is refused, not silently replaced by defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesh_stream.errors import ConfigurationError
from mesh_stream.governance.registry_hook import governance_validators
from mesh_stream.settings import MeshSettings


def test_a_missing_governance_root_names_the_setting(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-repo"
    with pytest.raises(ConfigurationError) as raised:
        governance_validators(MeshSettings(governance_root=missing))
    assert str(raised.value) == (
        f"MESH_GOVERNANCE_ROOT={missing} is not a folder; point it at the repository root "
        "holding mesh-policies.yaml and domains/, or unset it for the built-in policies"
    )


def test_an_existing_root_without_a_policy_file_uses_the_defaults(tmp_path: Path) -> None:
    assert len(governance_validators(MeshSettings(governance_root=tmp_path))) == 1


def test_the_project_root_is_the_default_governance_root(tmp_path: Path) -> None:
    (tmp_path / "mesh-policies.yaml").write_text("policies: [nonsense\n")
    with pytest.raises(ConfigurationError, match=r"mesh-policies\.yaml"):
        governance_validators(MeshSettings(project_root=tmp_path))  # its policies are read
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert governance_validators(MeshSettings(project_root=tmp_path, governance_root=elsewhere))
