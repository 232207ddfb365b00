"""What a seeding run is asked to make and what it made: the sizes, the result and its
summary, the error it raises, and the demo logins it reports."""

from __future__ import annotations

from dataclasses import dataclass, field

from blog.shop.models import OrderStatus

#: The demo logins; the summary prints them, and ``make run`` shows them at every start.
DEMO_ADMIN = "admin"
DEMO_MEMBER = "reader"
DEMO_PASSWORD = "inkwell-demo"
DISCOUNT_CODE = "WELCOME10"

#: The command shows a progress bar when members + posts + products + orders exceed this.
PROGRESS_THRESHOLD = 5000


@dataclass(frozen=True)
class SeedSizes:
    """How much to make. ``users`` counts the demo admin and the demo member too."""

    users: int = 12
    posts: int = 40
    products: int = 16
    orders: int = 30

    def check(self) -> None:
        """Raise :class:`SeedError` for sizes that cannot be made."""
        if self.users < 2:
            raise SeedError("--users must be at least 2 (the demo admin and the demo member).")
        if min(self.posts, self.products, self.orders) < 0:
            raise SeedError("Sizes cannot be negative.")
        if self.orders and not self.products:
            raise SeedError("Orders need products: give --products 1 or more, or --orders 0.")

    @property
    def items(self) -> int:
        """The units a progress bar counts: members, posts, products and orders."""
        return self.users + self.posts + self.products + self.orders


@dataclass
class SeedResult:
    """What :func:`seed_site` made, and how to log in."""

    seed: int
    admin_username: str
    member_username: str
    admin_password: str
    member_password: str
    counts: dict[str, int] = field(default_factory=dict)
    discount_code: str = DISCOUNT_CODE
    #: A generated member holding the editor role, and one holding only the author role
    #: (None when too few members write); they share the demo member's password.
    editor_username: str | None = None
    author_username: str | None = None

    def summary(self, elapsed: float | None = None) -> list[str]:
        """The report's lines: what was made (in ``elapsed`` seconds), then the logins."""
        def n(key: str, noun: str, plural: str | None = None) -> str:
            count = self.counts[key]
            return f"{count:,} {noun if count == 1 else plural or noun + 's'}"

        took = f" in {elapsed:.1f} s" if elapsed is not None else ""
        statuses = ", ".join(f"{self.counts[status]} {status}" for status in OrderStatus.ALL)
        return [
            f"Added with --seed {self.seed}{took}:",
            (f"  {n('users', 'member')} ({n('admins', 'admin')}, {n('editors', 'editor')}, "
             f"{n('authors', 'author')}, {self.counts['inactive']} deactivated), "
             f"{n('follows', 'follow')}"),
            (f"  {n('posts', 'post')} ({n('drafts', 'draft')}), {n('tags', 'tag')}, "
            f"{n('comments', 'comment')}, {n('likes', 'like')}"),
            (f"  {n('categories', 'category', 'categories')}, {n('products', 'product')} with "
            f"{n('variants', 'variant')}, {n('shipping_methods', 'shipping method')}, "
            f"discount code {self.discount_code}"),
            f"  {n('orders', 'order')} ({statuses})",
            *login_lines(self.admin_username, self.admin_password,
                         self.member_username, self.member_password,
                         editor=self.editor_username, author=self.author_username),
        ]


class SeedError(Exception):
    """The site cannot be seeded as asked; ``message`` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


REFUSAL = "The site already has data; use --force to add demo data anyway."


def login_lines(admin: str | None, admin_password: str,
                member: str | None, member_password: str, *,
                editor: str | None = None, author: str | None = None) -> list[str]:
    """How to log in as the demo admin, an editor, an author and the demo member, a plain
    reader (any may be None); the editor and the author have the member's password."""
    lines = ["Log in at /auth/login as:"] if admin or member or editor or author else []
    if admin:
        lines.append(f"  admin:  {admin} / {admin_password}")
    if editor:
        lines.append(f"  editor: {editor} / {member_password}")
    if author:
        lines.append(f"  author: {author} / {member_password}")
    if member:
        lines.append(f"  member: {member} / {member_password}  (every demo member has this password)")
    return lines
