"""Small text helpers shared by the domains."""

from __future__ import annotations

import re
import unicodedata


def slugify(text: str, max_length: int = 200, fallback: str = "post") -> str:
    """ASCII, lower-case, hyphen-separated: "Ünïcode & Co!" -> "unicode-co"."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:max_length].rstrip("-") or fallback


#: What XML 1.0 cannot carry (its ``Char`` production): control characters other than tab,
#: newline and carriage return, lone UTF-16 surrogates, and U+FFFE/U+FFFF.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_safe(text: str) -> str:
    """``text`` without the characters XML 1.0 cannot carry. Text people write never holds
    them on purpose (they come from pasting), and one of them in a post would make the Atom
    feed invalid XML for every subscriber, so they are dropped when the text is saved."""
    return _NOT_XML.sub("", text)
