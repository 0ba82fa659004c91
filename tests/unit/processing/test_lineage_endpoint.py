"""Where a worker posts its OpenLineage events for each form of ``MESH_OPENLINEAGE_URL``
(h42: a URL given with its path posted to ``/api/v1/api/v1/lineage``, without its query)."""

from __future__ import annotations

from urllib.parse import urljoin

import pytest

from mesh_stream.processing.lineage import lineage_endpoint


@pytest.mark.parametrize(
    ("given", "posted_to"),
    [
        ("http://marquez:5000", "http://marquez:5000/api/v1/lineage"),
        ("http://marquez:5000/", "http://marquez:5000/api/v1/lineage"),
        (
            "https://u:p@lineage.example/api/v1/lineage?api_key=K",
            "https://u:p@lineage.example/api/v1/lineage?api_key=K",
        ),
        ("http://proxy/marquez", "http://proxy/marquez/api/v1/lineage"),
        ("http://proxy/openlineage", "http://proxy/openlineage/api/v1/lineage"),  # h43
        ("http://proxy/ol/api/v1/lineage/", "http://proxy/ol/api/v1/lineage"),
    ],
)
def test_the_transport_posts_where_the_setting_says(given: str, posted_to: str) -> None:
    base, endpoint = lineage_endpoint(given)
    assert urljoin(base, endpoint) == posted_to  # as openlineage's HttpTransport joins them
