"""axe-core for the browser tests: fetched from the npm registry into a git-ignored cache.

``python -m tests.browser.axe`` (what ``make browser-deps`` runs) fetches it ahead of time; the
browser tests' conftest calls :func:`ensure_axe` too, so a plain ``pytest`` works alike.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

# Pinned: a new axe release adds rules, so moving to it is a deliberate upgrade.
AXE_CORE_VERSION = "4.10.3"
CACHE = Path(__file__).resolve().parents[2] / ".cache" / "axe"
AXE_SCRIPT = CACHE / "node_modules" / "axe-core" / "axe.min.js"


def ensure_axe() -> Path:
    """The path of axe.min.js, installed with npm first when it is not in the cache."""
    if AXE_SCRIPT.exists():
        return AXE_SCRIPT
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed to fetch axe-core for the browser tests (apt-get install npm)")
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run([npm, "install", "--prefix", str(CACHE), "--no-save", "--no-audit", "--no-fund",
                    "--loglevel=error", f"axe-core@{AXE_CORE_VERSION}"], check=True)
    if not AXE_SCRIPT.exists():
        raise RuntimeError(f"npm did not install {AXE_SCRIPT}")
    return AXE_SCRIPT


if __name__ == "__main__":
    print(ensure_axe())
