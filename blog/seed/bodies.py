"""Post bodies for the demo blog, assembled from Markdown blocks rendered once each.

Rendering Markdown is the slow part of seeding (about a millisecond per post). Blocks
separated by blank lines render independently, so the HTML of a body made of blocks is the
concatenation of the blocks' HTML, and a pool of some 150 rendered blocks serves any number
of posts. (The tests check bodies against :func:`blog.rendering.render_markdown`.)
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from blog.rendering import excerpt_of, render_markdown
from blog.seed.words import CODE_SNIPPETS, HEADINGS, LINKS, LIST_ITEMS, SENTENCES, TABLES


@dataclass
class BodyPool:
    """Markdown blocks, each rendered once. A post body is a paragraph, then paragraphs
    with an occasional heading, list, quote, code block or table before them. Two non-
    paragraph blocks are never adjacent (two lists in a row would merge into one), so every
    block renders the same alone as in the body, and a body's HTML is its blocks' HTML."""

    paragraphs: list[tuple[str, str, str]]  # (markdown, html, plain text)
    extras: list[tuple[str, str, str]]
    _excerpts: dict[tuple[int, ...], str] = field(default_factory=dict)

    @classmethod
    def build(cls, rng: random.Random, paragraphs: int = 120) -> BodyPool:
        """Draw ``paragraphs`` paragraphs and the extra blocks, and render each once."""
        def block(markdown: str) -> tuple[str, str, str]:
            html = render_markdown(markdown)
            return markdown, html, excerpt_of(html, length=10_000)

        return cls(
            paragraphs=[block(_paragraph(rng)) for _ in range(paragraphs)],
            extras=[block(markdown) for markdown in _extras(rng)],
        )

    def body(self, rng: random.Random) -> tuple[str, str, str]:
        """A post's (Markdown, HTML, excerpt)."""
        keys = [rng.randrange(len(self.paragraphs))]
        chosen = [self.paragraphs[keys[0]]]
        for _ in range(rng.randint(1, 4)):
            if rng.random() < 0.45:
                extra = rng.randrange(len(self.extras))
                keys.append(-1 - extra)  # negative keys: extras
                chosen.append(self.extras[extra])
            paragraph = rng.randrange(len(self.paragraphs))
            keys.append(paragraph)
            chosen.append(self.paragraphs[paragraph])
        markdown = "\n".join(part[0] for part in chosen)
        html = "".join(part[1] for part in chosen)
        return markdown, html, self._excerpt(keys, chosen)

    def _excerpt(self, keys: list[int], chosen: list[tuple[str, str, str]]) -> str:
        # excerpt_of() takes ~60 µs; it depends only on the first 280 characters of text, so
        # it is computed once per distinct run of leading blocks that holds comfortably more
        # text than that (the margin covers the spaces between blocks).
        text_length = 0
        for count, part in enumerate(chosen, 1):  # noqa: B007 (read after the loop)
            text_length += len(part[2]) + 1
            if text_length > 320:
                break
        key = tuple(keys[:count])
        excerpt = self._excerpts.get(key)
        if excerpt is None:
            excerpt = self._excerpts[key] = excerpt_of("".join(part[1] for part in chosen[:count]))
        return excerpt


def _paragraph(rng: random.Random) -> str:
    sentences = rng.sample(SENTENCES, rng.randint(3, 6))
    roll = rng.random()
    if roll < 0.25:  # some inline Markdown, so pages show rendered formatting
        words = sentences[0].split(" ")
        at = rng.randrange(len(words))
        words[at] = f"*{words[at]}*"
        sentences[0] = " ".join(words)
    elif roll < 0.4:
        label, url = rng.choice(LINKS)
        sentences.append(f"There is more at [{label}]({url}).")
    elif roll < 0.5:
        sentences[-1] = f"**{sentences[-1]}**"
    return " ".join(sentences) + "\n"


def _extras(rng: random.Random) -> list[str]:
    blocks = [f"## {heading}\n" for heading in HEADINGS]
    for _ in range(6):
        items = rng.sample(LIST_ITEMS, rng.randint(3, 5))
        blocks.append("".join(f"- {item}\n" for item in items))
        blocks.append("".join(f"{number}. {item}\n" for number, item in enumerate(items, 1)))
    blocks += [f"> {sentence}\n" for sentence in rng.sample(SENTENCES, 6)]
    blocks += [*CODE_SNIPPETS, *TABLES, "---\n"]
    return blocks
