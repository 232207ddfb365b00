"""The material the demo site is written from: names, titles, sentences, Markdown pieces,
the catalogue, places, and the odds the orders are drawn with.

Only data lives here; :mod:`blog.seed.builder` draws from it. Reordering or editing a tuple
changes what a given ``--seed`` makes (draws pick by position), so the demo data of a seed
is only stable while this module is.
"""

from __future__ import annotations

from typing import NamedTuple

from blog.shop.models import OrderStatus

FIRST_NAMES = (
    "ada", "amara", "arjun", "aiko", "bea", "camille", "dara", "diego", "elena", "emeka",
    "farah", "felix", "freya", "grace", "hana", "idris", "ines", "jonas", "kenji", "kofi",
    "lena", "leila", "lucia", "malik", "mateo", "mei", "nadia", "noah", "nora", "omar",
    "priya", "quentin", "ravi", "rosa", "samir", "sofia", "tomas", "una", "yara", "zara",
)
LAST_NAMES = (
    "ahmed", "byrne", "costa", "dubois", "eriksen", "ferreira", "garcia", "haddad", "ito",
    "jensen", "kowalski", "larsen", "mensah", "moreau", "nakamura", "novak", "okafor",
    "osei", "petrov", "quinn", "rossi", "silva", "tanaka", "umar", "varga", "weber",
    "xu", "yilmaz", "zeller", "lindqvist",
)

TITLE_OPENERS = (
    "Notes on", "A short history of", "In praise of", "What I learned from", "Against",
    "Field notes:", "The quiet joy of", "Ten years of", "Letters about", "On",
    "A beginner's guide to", "Why I still care about", "Rethinking", "The trouble with",
    "Small lessons in", "A week of", "Sketches of", "Confessions about", "Looking again at",
    "Working with",
)
TITLE_TOPICS = (
    "letterpress", "marginalia", "the semicolon", "fountain pens", "paper grain",
    "hand-set type", "slow reading", "bookbinding", "zine fairs", "index cards",
    "the long essay", "rejection letters", "deckled edges", "blue-black ink", "night trains",
    "library sales", "first drafts", "footnotes", "linocuts", "risograph printing",
    "second-hand bookshops", "the comma splice", "notebooks", "writing by hand",
    "mailing lists", "the printed page", "small presses", "reading aloud", "margins",
    "translation", "keeping a diary", "proofreading", "old typewriters", "cheap paper",
    "book fairs", "the serif", "letter writing", "studio mornings", "stamps and postmarks",
    "illustrated maps", "pocket editions", "public libraries", "kerning", "watercolour",
    "dust jackets", "the unfinished novel", "walking to think", "short stories",
    "poetry readings", "postcards",
)
TITLE_TAILS = (
    "", "", "", "", " in winter", " in the city", ", again", ": a reply", " (revisited)",
    " for beginners", ", part two", " after midnight",
)

TAG_NAMES = (
    "letterpress", "poetry", "notebooks", "typography", "essays", "travel", "printmaking",
    "bookbinding", "reading", "zines", "ink", "paper", "process", "studio", "news",
    "reviews", "craft", "history", "interviews", "diary", "fiction", "tools",
)

SENTENCES = (
    "The press was older than the building, and it still printed cleaner than anything new.",
    "I spent the morning sorting type that had been dropped on the floor decades ago.",
    "Good paper forgives a heavy hand; cheap paper remembers every mistake.",
    "There is a particular silence in a room where someone is reading.",
    "Every draft I keep is a draft I was once embarrassed by.",
    "The ink took three days to dry, which felt like a lesson in patience.",
    "Nobody reads the colophon, and that is exactly why I love writing them.",
    "A margin is not empty space; it is room for the reader to answer back.",
    "We sold forty copies at the fair and gave away twice as many.",
    "The best notebooks are the ones you are not afraid to ruin.",
    "My grandmother wrote letters in green ink and never explained why.",
    "I rewrote the opening paragraph eleven times before breakfast.",
    "Some books are for reading, and some are for holding on a train.",
    "The binding cracked on the first opening, which is how you know it is honest.",
    "Footnotes are where writers hide the things they actually care about.",
    "A small press is mostly a spreadsheet with ambitions.",
    "The second edition fixed one typo and introduced three new ones.",
    "Reading aloud is the fastest way to find a sentence that does not work.",
    "I keep a list of words I like the shape of, whatever they mean.",
    "The post office knows me by name now, which is either a compliment or a warning.",
    "A linocut only looks simple once it is finished.",
    "There is no such thing as a blank page once the coffee is poured.",
    "We argued for an hour about a comma and both of us were right.",
    "The library smelled of rain, dust and somebody's oranges.",
    "Finishing a thing matters more than finishing it perfectly.",
    "The risograph jammed twice, then printed the best run of the year.",
    "Every index card on my wall is a promise I have not kept yet.",
    "Old typewriters teach you to think a sentence through before you start it.",
    "The postcard arrived six weeks late and was better for the wait.",
    "I trust a bookshop that has a chair in the poetry section.",
)
LINKS = (
    ("Project Gutenberg", "https://www.gutenberg.org/"),
    ("the Internet Archive", "https://archive.org/"),
    ("the British Library", "https://www.bl.uk/"),
    ("the Letterpress Commons", "https://letterpresscommons.com/"),
    ("Wikipedia's page on typesetting", "https://en.wikipedia.org/wiki/Typesetting"),
)
HEADINGS = (
    "What went wrong", "What went right", "A detour", "The tools", "Why it matters",
    "Next time", "A note on materials", "Further reading", "Where this leaves me",
)
LIST_ITEMS = (
    "a bone folder", "waxed linen thread", "a steel ruler", "patience", "two kinds of glue",
    "more paper than you think", "a good lamp", "an honest friend", "a sharp pencil",
    "a quiet hour", "a kettle", "somewhere to spread out",
)
CODE_SNIPPETS = (
    "```text\n12pt Caslon, 14pt leading\nmeasure: 26 picas\n```\n",
    "```python\nfor page in range(1, 33):\n    fold(page)\n```\n",
    "```text\nsection 1: 4 sheets, folded twice\nsection 2: 4 sheets, folded twice\n```\n",
)
TABLES = (
    ("| Paper | Weight | Verdict |\n|---|---|---|\n| Cotton rag | 300 gsm | Lovely |\n"
    "| Recycled | 90 gsm | Fine for proofs |\n"),
    "| Day | Pages |\n|---|--:|\n| Monday | 4 |\n| Tuesday | 0 |\n| Wednesday | 11 |\n",
)
COMMENT_SENTENCES = (
    "This is lovely, thank you.", "I had exactly the same experience last spring.",
    "Could you say more about the paper you used?", "Bookmarked for the weekend.",
    "Beautifully put.", "I disagree a little, but I enjoyed the argument.",
    "Where can I buy the green ink?", "This made me want to write a letter.",
    "Thanks for the reading list!", "The part about margins made me laugh.",
    "Printed this out to read properly.", "Any tips for a complete beginner?",
)

class Department(NamedTuple):
    """A category of the demo shop and what its products are made of."""

    category: str
    nouns: tuple[str, ...]
    #: The variant labels a product may have; an empty set is a product of one variant.
    label_sets: tuple[tuple[str, ...], ...]
    #: A product's base price is drawn from this range (low included, high not).
    price_cents: tuple[int, int]


CATALOGUE = (
    Department("Books", ("Essays", "Field Notes", "Collected Letters", "Short Stories", "Almanac"),
               ((), ("Paperback", "Hardcover")), (1400, 3600)),
    Department("Prints", ("Press Print", "Linocut", "Map Print", "Type Specimen", "Botanical Print"),
               ((), ("A4 matte", "A3 matte", "A2 giclée")), (1800, 9000)),
    Department("Clothing", ("T-shirt", "Sweatshirt", "Tote Bag", "Apron"),
               ((), ("S", "M", "L", "XL")), (1800, 4800)),
    Department("Stationery", ("Notebook", "Postcard Set", "Pencil Set", "Letter Paper", "Bookmark Set"),
               ((), ("Lined", "Dotted", "Plain")), (400, 2600)),
    Department("Zines", ("Zine", "Pamphlet", "Broadside"), ((),), (400, 1200)),
)
PRODUCT_ADJECTIVES = (
    "Inkwell", "Midnight", "Marginal", "Paper Moon", "Slow Hours", "Blue-Black", "Deckle",
    "Quiet Press", "Small Type", "Morning Proof", "Riso", "Colophon",
)
DESCRIPTIONS = (
    "Printed in small batches in our studio.", "Each copy is numbered by hand.",
    "Made with recycled paper and soy-based ink.", "A favourite at every fair we go to.",
    "Ships flat in a rigid envelope.", "Designed and printed in-house.",
    "Limited run; when it is gone, it is gone.",
)
SHIPPING_METHODS = (("Standard post", "4.50"), ("Tracked post", "7.90"), ("Courier", "12.00"))
PLACES = (
    ("London", "United Kingdom", "N1 #AB"), ("Lisbon", "Portugal", "1100-###"),
    ("Berlin", "Germany", "10###"), ("Toronto", "Canada", "M5V #K#"),
    ("Melbourne", "Australia", "3###"), ("Dublin", "Ireland", "D0# X#Y#"),
    ("Portland", "United States", "972##"), ("Lyon", "France", "6900#"),
    ("Utrecht", "Netherlands", "35## AB"), ("Oslo", "Norway", "0###"),
)
STREETS = ("Paper Lane", "Mill Road", "Station Street", "Harbour Way", "Chapel Row",
           "Printers' Yard", "Elm Avenue", "Canal Walk")

# Weighted choices: (values, weights).
STATUS_WEIGHTS = ((OrderStatus.DELIVERED, OrderStatus.SHIPPED, OrderStatus.PAID,
                   OrderStatus.PENDING, OrderStatus.CANCELLED), (40, 15, 15, 15, 15))
#: How many days ago an order in each status was placed (recent orders are still pending).
STATUS_AGE_DAYS = {OrderStatus.PENDING: (0, 4), OrderStatus.PAID: (1, 10),
                   OrderStatus.SHIPPED: (3, 21), OrderStatus.DELIVERED: (7, 60),
                   OrderStatus.CANCELLED: (0, 60)}
