"""The data-product portal: server-rendered pages under ``/ui`` in the registry's own process.

Jinja2 templates render every page on the server from the registry's in-process services
(no second API client, no Node build); a little vendored JavaScript adds search-as-you-type
(htmx) and the lineage graph (cytoscape). Every asset is served from ``/ui/static``, so the
portal works offline and under a strict Content-Security-Policy. Who may see what is the REST
API's rule (:mod:`.access`). Layout: :mod:`.web` (templates, CSP, mounting), one module per
page family.
"""

from mesh_stream.registry.portal.web import error_page, install_portal

__all__ = ["error_page", "install_portal"]
