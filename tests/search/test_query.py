"""The search parser: what a reader's text means, how it is written for each database, and
that no input can make it raise or produce an invalid full-text query."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blog.search import Clause, SearchQuery, Term, parse
from blog.search.query import MAX_PHRASE_WORDS, MAX_TERMS
from blog.search.schema import TOKENIZE


def q(*clauses: tuple[list[tuple[str, ...]], list[tuple[str, ...]]]) -> SearchQuery:
    return SearchQuery(tuple(Clause(tuple(Term(t) for t in required), tuple(Term(t) for t in excluded))
                             for required, excluded in clauses))


@pytest.mark.parametrize(("text", "expected"), [
    ("tea", q(([("tea",)], []))),
    ("  Tea   CAKE ", q(([("tea",), ("cake",)], []))),
    ('"green tea" cake', q(([("green", "tea"), ("cake",)], []))),
    ('"unclosed phrase', q(([("unclosed", "phrase")], []))),
    ("tea -cake", q(([("tea",)], [("cake",)]))),
    ('tea -"green tea"', q(([("tea",)], [("green", "tea")]))),
    ("tea or coffee", q(([("tea",)], []), ([("coffee",)], []))),
    ("tea cake OR coffee -milk", q(([("tea",), ("cake",)], []), ([("coffee",)], [("milk",)]))),
    ("or tea or or coffee or", q(([("tea",)], []), ([("coffee",)], []))),
    ("tea AND cake", q(([("tea",), ("cake",)], []))),
    ("tea and cake", q(([("tea",), ("and",), ("cake",)], []))),
    ('"or" tea', q(([("or",), ("tea",)], []))),
    ("col:term", q(([("col", "term")], []))),
    ("well-known a_b", q(([("well", "known"), ("a", "b")], []))),
    ("NEAR(a b)", q(([("near", "a"), ("b",)], []))),
    ("tea tea TEA", q(([("tea",)], []))),
    ("tea or tea", q(([("tea",)], []))),
    ("-tea or coffee", q(([("coffee",)], []))),  # a clause that only excludes is dropped
    ("cafe\u0301", q(([("café",)], []))),  # combining accent composed first
    ("🐍python🐍", q(([("python",)], []))),
])
def test_parse(text: str, expected: SearchQuery) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize("text", [
    None, "", "   ", '"', '""', "-", "--", "-tea", '-"green tea"', "or", "OR OR", "AND", "(((", "*",
    "^", "%", "_", "\\", "\x00", "😀", "\ue000", "-tea -cake", "'", ":", "...",
])
def test_nothing_to_search_for(text: str | None) -> None:
    assert parse(text) is None


def test_limits() -> None:
    many = parse(" ".join(f"w{number}" for number in range(100)))
    assert many is not None and len(many.clauses[0].required) == MAX_TERMS
    long_phrase = parse('"' + " ".join(f"w{number}" for number in range(100)) + '"')
    assert long_phrase is not None and len(long_phrase.clauses[0].required[0].words) == MAX_PHRASE_WORDS
    assert parse("x" * 100_000) is not None


def test_renderings() -> None:
    query = parse('tea "green tea" -milk or coffee')
    assert query is not None
    assert query.fts5() == '(("tea" AND "green tea") NOT ("milk")) OR ("coffee")'
    assert query.websearch() == '"tea" "green tea" -"milk" or "coffee"'
    assert str(query) == query.websearch()
    assert query.words() == ["tea", "green", "tea", "coffee"]


@pytest.fixture(scope="module")
def fts() -> sqlite3.Connection:
    """An in-memory FTS5 table with the site's tokenizer, to run rendered queries on."""
    connection = sqlite3.connect(":memory:")
    connection.execute(f"CREATE VIRTUAL TABLE t USING fts5(a, b, tokenize='{TOKENIZE}')")
    connection.executemany("INSERT INTO t VALUES (?, ?)", [
        ("green tea", "cake"), ("coffee", "milk"), ("tea and milk", "or not"), ("near", "title")])
    return connection


@given(st.text(max_size=300))
def test_any_text_parses_to_a_valid_fts5_query(fts: sqlite3.Connection, text: str) -> None:
    query = parse(text)
    if query is not None:
        fts.execute("SELECT rowid FROM t WHERE t MATCH ?", (query.fts5(),)).fetchall()


@given(st.lists(st.sampled_from(['"', "-", "or", "OR", "AND", "NOT", "NEAR", "(", ")", "*", "^", ":",
                                 "a", "b", "tea", " ", "'", "+", "\\", "{", "}", "title:", "\x00"]),
                max_size=40))
def test_operator_soup_parses_to_a_valid_fts5_query(fts: sqlite3.Connection, parts: list[str]) -> None:
    query = parse("".join(parts))
    if query is not None:
        fts.execute("SELECT rowid FROM t WHERE t MATCH ?", (query.fts5(),)).fetchall()


@pytest.mark.parametrize(("text", "rows"), [
    ("tea", {1, 3}), ("tea -milk", {1}), ('"green tea"', {1}), ("cake or coffee", {1, 2}),
    ('"or"', {3}), ("not", {3}), ("title:near", set()), ("near title", {4}),
])
def test_fts5_meaning(fts: sqlite3.Connection, text: str, rows: set[int]) -> None:
    query = parse(text)
    assert query is not None
    found = {row[0] for row in fts.execute("SELECT rowid FROM t WHERE t MATCH ?", (query.fts5(),))}
    assert found == rows
