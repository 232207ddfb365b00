"""Small text helpers shared by the domains."""

from __future__ import annotations

import re
import unicodedata


def slugify(text: str, max_length: int = 200, fallback: str = "post") -> str:
    """ASCII, lower-case, hyphen-separated: "Ünïcode & Co!" -> "unicode-co"."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:max_length].rstrip("-") or fallback
