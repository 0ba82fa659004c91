"""Copy the portal's browser assets from tools/vendor/node_modules into the package.

`make vendor` runs `npm ci` in tools/vendor (versions pinned in its package.json and
package-lock.json), then this script. The files are committed, so the registry serves them
without Node or the internet at run time; VENDORED.json records each file's package,
version, licence and SHA-256, and tests/unit/registry/portal/test_vendored_assets.py fails
when a vendored file no longer matches it (edited by hand, or a half-done update).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NODE_MODULES = ROOT / "tools" / "vendor" / "node_modules"
TARGET = ROOT / "mesh_stream" / "registry" / "portal" / "static" / "vendor"

#: (npm package, file inside it, name under static/vendor)
FILES = (
    ("htmx.org", "dist/htmx.min.js", "htmx.min.js"),
    ("cytoscape", "dist/cytoscape.min.js", "cytoscape.min.js"),
    ("swagger-ui-dist", "swagger-ui-bundle.js", "swagger-ui-bundle.js"),
    ("swagger-ui-dist", "swagger-ui.css", "swagger-ui.css"),
)
LICENCE_FILES = ("LICENSE", "LICENSE.md", "LICENSE.txt", "license")


def main() -> int:
    if not NODE_MODULES.is_dir():
        print(f"{NODE_MODULES} is missing: run `npm ci --prefix tools/vendor` first")
        return 1
    TARGET.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, dict[str, str]] = {}
    for package, inner, name in FILES:
        folder = NODE_MODULES / package
        meta = json.loads((folder / "package.json").read_text(encoding="utf-8"))
        shutil.copyfile(folder / inner, TARGET / name)
        manifest[name] = {
            "package": package,
            "version": meta["version"],
            "license": str(meta.get("license", "")),
            "source": f"{package}/{inner}",
            "sha256": hashlib.sha256((TARGET / name).read_bytes()).hexdigest(),
        }
        for licence in LICENCE_FILES:
            if (folder / licence).is_file():
                shutil.copyfile(folder / licence, TARGET / f"{package}.LICENSE.txt")
                break
    (TARGET / "VENDORED.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    print(f"vendored {len(FILES)} files into {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
