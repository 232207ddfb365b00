"""What a reader typed into a search box, parsed once into a small query tree.

The grammar is the one people know from web search engines (and PostgreSQL's
``websearch_to_tsquery``):

- words in any order, all required: ``tea ceremony``;
- ``"a quoted phrase"``: those words, next to each other, in that order;
- ``-word`` or ``-"a phrase"``: documents containing it are left out;
- ``or`` (any case) between two parts: either side may match; it binds more loosely than
  the implicit AND, so ``tea cake or coffee`` is (tea AND cake) OR coffee.

The parser never raises. Whatever it cannot use is dropped: punctuation, a stray quote or
dash, ``or`` with nothing on one side, a clause that only excludes (there is nothing to rank
and neither database can start from "everything but"). A word is a run of letters and digits
(the same rule as SQLite's ``unicode61`` tokenizer), so ``col:term``, ``a_b`` or
``well-known`` become phrases of their parts, as both databases index them.

The tree is rendered for each database by this module too (:meth:`SearchQuery.fts5` and
:meth:`SearchQuery.websearch`), from parsed words only: the reader's text itself never
reaches a full-text query parser, so no input can be a syntax error or an injection.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

#: Text longer than this is cut before parsing (a search box sends at most 200 characters;
#: this bounds the work for anything else).
MAX_QUERY_CHARS = 256
#: Terms (words or phrases, included or excluded) kept across the whole query.
MAX_TERMS = 16
#: Words kept in one phrase.
MAX_PHRASE_WORDS = 16

# A word: letters and digits (no underscore), as SQLite's unicode61 and PostgreSQL's parser
# split text. Combining accents are composed first (NFC), so "café" stays one word.
_WORD = re.compile(r"[^\W_]+")
# The lexer's pieces: a quoted phrase (the closing quote may be missing), or a run of
# anything else that is not white space; either may carry a leading dash.
_PIECE = re.compile(r'(-*)(?:"([^"]*)"?|([^\s"]+))')


@dataclass(frozen=True)
class Term:
    """One word, or a phrase: several words that must appear next to each other, in order."""

    words: tuple[str, ...]

    def fts5(self) -> str:
        """An FTS5 string: every term is double-quoted (quotes doubled), so FTS5 reads it as
        plain text tokens, never as an operator, a column filter or a prefix."""
        return '"' + " ".join(self.words).replace('"', '""') + '"'

    def websearch(self) -> str:
        """The same for ``websearch_to_tsquery``: quoted, so ``or`` and ``-`` inside are words."""
        return '"' + " ".join(self.words).replace('"', " ") + '"'


@dataclass(frozen=True)
class Clause:
    """Documents with every ``required`` term and none of the ``excluded`` ones."""

    required: tuple[Term, ...]
    excluded: tuple[Term, ...] = ()

    def fts5(self) -> str:
        required = " AND ".join(term.fts5() for term in self.required)
        if not self.excluded:
            return f"({required})"
        excluded = " OR ".join(term.fts5() for term in self.excluded)
        # FTS5's NOT is binary ("a NOT b"): the clause's terms, minus any excluded one.
        return f"(({required}) NOT ({excluded}))"

    def websearch(self) -> str:
        return " ".join([term.websearch() for term in self.required]
                        + ["-" + term.websearch() for term in self.excluded])


@dataclass(frozen=True)
class SearchQuery:
    """A parsed query: documents matching any of the ``clauses``. Never empty (see
    :func:`parse`), so each rendering is a valid query for its database."""

    clauses: tuple[Clause, ...]

    def fts5(self) -> str:
        """The query as an SQLite FTS5 MATCH expression."""
        return " OR ".join(clause.fts5() for clause in self.clauses)

    def websearch(self) -> str:
        """The query as text for PostgreSQL's ``websearch_to_tsquery``, rebuilt from the parsed
        words so that it means exactly what :meth:`fts5` means."""
        return " or ".join(clause.websearch() for clause in self.clauses)

    @property
    def excludes(self) -> bool:
        """Whether any clause leaves something out (``-word``)."""
        return any(clause.excluded for clause in self.clauses)

    def words(self) -> list[str]:
        """Every word the query looks for (not the excluded ones), for display."""
        return [word for clause in self.clauses for term in clause.required for word in term.words]

    def __str__(self) -> str:
        return self.websearch()


def _words(text: str) -> tuple[str, ...]:
    return tuple(word.lower() for word in _WORD.findall(text))[:MAX_PHRASE_WORDS]


def parse(text: str | None) -> SearchQuery | None:
    """Parse a reader's search text; None when nothing in it can be searched for (empty,
    only punctuation, only exclusions). Never raises, whatever ``text`` holds."""
    text = unicodedata.normalize("NFC", (text or "")[:MAX_QUERY_CHARS])
    clauses: list[Clause] = []
    required: list[Term] = []
    excluded: list[Term] = []
    terms = 0

    def close_clause() -> None:
        # A clause that only excludes cannot stand on its own: it is dropped.
        if required:
            clause = Clause(tuple(required), tuple(excluded))
            if clause not in clauses:
                clauses.append(clause)
        required.clear()
        excluded.clear()

    for match in _PIECE.finditer(text):
        dashes, phrase, bare = match.groups()
        if bare is not None and not dashes:
            if bare.lower() == "or":
                close_clause()  # "or" at either end, or twice, closes nothing: ignored
                continue
            if bare == "AND":
                continue  # "tea AND cake" means what "tea cake" means
        words = _words(phrase if phrase is not None else bare)
        if not words or terms >= MAX_TERMS:
            continue
        term = Term(words)
        bucket = excluded if dashes else required
        if term not in bucket:
            bucket.append(term)
            terms += 1
    close_clause()
    return SearchQuery(tuple(clauses)) if clauses else None
