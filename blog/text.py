"""Small text helpers shared by the domains."""

from __future__ import annotations

import hashlib
import re
import unicodedata

#: What separates the words of a slug: runs of anything but letters, marks and digits.
_SEPARATORS = re.compile(r"-+")


def _fold(char: str) -> str:
    """``char`` lower-cased; a Latin letter with accents loses them ("É" -> "e", so the slugs
    of Latin-script titles stay the plain ASCII they always were), any other letter, mark or
    digit is kept as it is ("日", "λ", "ж"), and everything else becomes a separator."""
    stripped = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
    if stripped and stripped.isascii():
        return "".join(c if c.isalnum() else "-" for c in stripped.lower())
    return char.lower() if unicodedata.category(char)[0] in "LMN" else "-"


def slugify(text: str, max_length: int = 200) -> str:
    """Lower-case words joined by hyphens: "Ünïcode & Co!" -> "unicode-co",
    "日本語のタイトル" -> "日本語のタイトル", "Καλημέρα κόσμε" -> "καλημέρα-κόσμε".

    Letters of every script are kept (URLs carry them percent-encoded, and ``url_for`` and
    the routes handle that), so a title in Japanese, Greek or Russian gets its own words
    rather than a generic one. A text with no letters or digits at all ("!!!", "🙂") gets a
    short fingerprint of itself instead: the same text always gives the same slug, and two
    such texts rarely collide (:func:`blog.database_session.unique_slug` settles it if
    they do).
    """
    composed = unicodedata.normalize("NFKC", text)
    slug = _SEPARATORS.sub("-", "".join(_fold(char) for char in composed)).strip("-")
    slug = slug[:max_length].rstrip("-")
    if slug:
        return slug
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:min(10, max_length)]


#: What XML 1.0 cannot carry (its ``Char`` production): control characters other than tab,
#: newline and carriage return, lone UTF-16 surrogates, and U+FFFE/U+FFFF.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_safe(text: str) -> str:
    """``text`` without the characters XML 1.0 cannot carry. Text people write never holds
    them on purpose (they come from pasting), and one of them in a post would make the Atom
    feed invalid XML for every subscriber, so they are dropped when the text is saved."""
    return _NOT_XML.sub("", text)


def describe_bytes(count: int) -> str:
    """A size for people: ``5 MB``, ``120 KB``, ``100 bytes`` (powers of 1024, three digits)."""
    if count >= 1024 * 1024:
        return f"{count / (1024 * 1024):.3g} MB"
    if count >= 1024:
        return f"{count / 1024:.3g} KB"
    return f"{count} bytes"
