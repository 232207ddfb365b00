"""Catalogue, carts, discounts, shipping and orders.

Patterns, as the seeds describe them:

- ``CartItem`` and ``OrderItem`` are association objects: a row between a cart (an order)
  and a variant that carries its own data (quantity; the price, name and SKU at purchase).
- ``Discount`` uses single-table inheritance: one table, a ``kind`` column, and a subclass
  per way of working out the amount off.
- Money columns use :class:`blog.database.Money`: cents in the database, ``Decimal`` here.
- Invariants the database can check are constraints (stock never below zero, an order's
  total equal to its parts), so no code path, concurrent or not, can break them.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    literal,
    select,
    text,
    type_coerce,
)
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, query_expression, relationship

from blog.accounts.models import User
from blog.database import Money, TimestampMixin, status_check, utcnow
from blog.extensions import Model
from blog.shop.pricing import ZERO, format_money, round_cents


class Category(Model):
    """A shelf in the shop ("Books", "Prints")."""

    __tablename__ = "categories"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    slug: Mapped[str] = mapped_column(String(100), unique=True)

    def __repr__(self) -> str:
        return f"<Category {self.slug}>"


class Product(TimestampMixin, Model):
    """Something the shop sells. Prices and stock live on its variants (at least one); a
    product with one variant is bought without choosing."""

    __tablename__ = "products"
    __table_args__ = (
        # The catalogue lists active products newest first or by name, optionally by category.
        Index("ix_products_active_created_at", "active", "created_at"),
        Index("ix_products_active_name", "active", "name"),
        Index("ix_products_category_id_active", "category_id", "active"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(220), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    category_id: Mapped[int | None] = mapped_column(ForeignKey("categories.id", ondelete="SET NULL"))
    active: Mapped[bool] = mapped_column(default=True)
    #: Name of the uploaded picture under ``instance/uploads/`` (its thumbnail is derived).
    image: Mapped[str | None] = mapped_column(String(100))

    category: Mapped[Category | None] = relationship()
    # Collections never load lazily: whoever lists products says what it loads.
    variants: Mapped[list[Variant]] = relationship(
        back_populates="product", cascade="all, delete-orphan", passive_deletes=True, lazy="raise_on_sql",
        order_by="Variant.id",
    )

    # Filled by catalogue queries from one aggregate over the variants (see catalog.py).
    min_price: Mapped[Decimal] = query_expression(type_coerce(literal(0), Money()))
    max_price: Mapped[Decimal] = query_expression(type_coerce(literal(0), Money()))
    total_stock: Mapped[int] = query_expression(literal(0))

    @property
    def has_choice(self) -> bool:
        """Whether buying it means choosing a variant."""
        return len(self.variants) > 1

    def __repr__(self) -> str:
        return f"<Product {self.slug}>"


class Variant(Model):
    """One buyable form of a product ("A4 matte", "M"), with its own SKU, price and stock."""

    __tablename__ = "variants"
    __table_args__ = (
        CheckConstraint("stock >= 0", name="stock_not_negative"),
        CheckConstraint("price >= 0", name="price_not_negative"),
        UniqueConstraint("product_id", "label"),
        # The catalogue's price aggregate reads a product's variants by this index.
        Index("ix_variants_product_id_price", "product_id", "price"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(80), default="")
    #: Unique when given; a single-variant product may have none.
    sku: Mapped[str | None] = mapped_column(String(64), unique=True)
    price: Mapped[Decimal]
    stock: Mapped[int] = mapped_column(default=0)

    product: Mapped[Product] = relationship(back_populates="variants")

    @property
    def display_name(self) -> str:
        """"Poster — A4 matte", or just "Poster" for a product's only, unlabelled variant."""
        return f"{self.product.name} — {self.label}" if self.label else self.product.name

    def __repr__(self) -> str:
        return f"<Variant {self.sku or self.id}>"


class Cart(TimestampMixin, Model):
    """A member's cart (one each, made at registration) or a visitor's, found by the hash
    of a random token kept in their signed session cookie."""

    __tablename__ = "carts"
    __table_args__ = (
        CheckConstraint("user_id IS NOT NULL OR token_hash IS NOT NULL", name="has_owner"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)

    items: Mapped[list[CartItem]] = relationship(
        back_populates="cart", cascade="all, delete-orphan", passive_deletes=True, lazy="raise_on_sql",
        order_by="CartItem.added_at, CartItem.variant_id",
    )

    @property
    def total(self) -> Decimal:
        """What the lines cost now."""
        return sum((item.line_total for item in self.items), ZERO)

    @property
    def quantity(self) -> int:
        return sum(item.quantity for item in self.items)


class CartItem(Model):
    """A variant in a cart, how many, and the unit price the shopper saw when adding it."""

    __tablename__ = "cart_items"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_price >= 0", name="unit_price_not_negative"),
        CheckConstraint("refunded_quantity >= 0 AND refunded_quantity <= quantity",
                        name="refunded_quantity_within_quantity"),
    )

    cart_id: Mapped[int] = mapped_column(ForeignKey("carts.id", ondelete="CASCADE"), primary_key=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id", ondelete="CASCADE"),
                                            primary_key=True, index=True)
    quantity: Mapped[int]
    unit_price: Mapped[Decimal]
    added_at: Mapped[datetime] = mapped_column(default=utcnow)

    cart: Mapped[Cart] = relationship(back_populates="items")
    variant: Mapped[Variant] = relationship()

    @hybrid_property
    def line_total(self) -> Decimal:
        """Quantity times the variant's current price: what checkout would charge."""
        return self.variant.price * self.quantity

    @line_total.inplace.expression
    @classmethod
    def _line_total_expression(cls) -> Any:
        price = select(Variant.price).where(Variant.id == cls.variant_id).scalar_subquery()
        return type_coerce(price * cls.quantity, Money())

    @property
    def price_changed(self) -> bool:
        """Whether the price moved since the shopper added the item (the cart warns)."""
        return self.unit_price != self.variant.price


class ShippingMethod(Model):
    """A way to deliver an order, at a fixed price."""

    __tablename__ = "shipping_methods"
    __table_args__ = (CheckConstraint("price >= 0", name="price_not_negative"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    price: Mapped[Decimal]
    active: Mapped[bool] = mapped_column(default=True)


class Discount(TimestampMixin, Model):
    """A discount code. Subclasses say how much it takes off; this class says when it applies.

    ``times_used`` only grows through a conditional UPDATE in checkout, and the check
    constraint keeps it within ``usage_limit`` even if some code forgot to.
    """

    __tablename__ = "discounts"
    __table_args__ = (
        CheckConstraint("times_used >= 0", name="times_used_not_negative"),
        CheckConstraint("usage_limit IS NULL OR times_used <= usage_limit", name="within_limit"),
        CheckConstraint("percent IS NULL OR (percent > 0 AND percent <= 100)", name="percent_range"),
        CheckConstraint("amount IS NULL OR amount > 0", name="amount_positive"),
        CheckConstraint("per_customer_limit IS NULL OR per_customer_limit >= 1",
                        name="per_customer_limit_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    #: Stored upper-case; shoppers may type it in any case.
    code: Mapped[str] = mapped_column(String(40), unique=True)
    active: Mapped[bool] = mapped_column(default=True)
    starts_at: Mapped[datetime | None]
    ends_at: Mapped[datetime | None]
    usage_limit: Mapped[int | None]
    times_used: Mapped[int] = mapped_column(default=0)
    #: How many of one member's orders (not cancelled) may use the code; None: no limit.
    #: Checked at checkout while the member's cart row is locked, so it holds under races.
    per_customer_limit: Mapped[int | None]
    min_subtotal: Mapped[Decimal | None]
    # One of these per subclass; single-table inheritance leaves the other NULL.
    percent: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    amount: Mapped[Decimal | None]

    __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_abstract": True}  # noqa: RUF012 (read once by SQLAlchemy)

    def amount_off(self, subtotal: Decimal) -> Decimal:
        """How much this code takes off ``subtotal`` (never more than the subtotal)."""
        raise NotImplementedError

    @property
    def description(self) -> str:
        raise NotImplementedError

    def problem_with(self, subtotal: Decimal, *, currency: str = "USD",
                     now: datetime | None = None) -> str | None:
        """Why the code cannot be used now on ``subtotal``, or None if it can. (Whether a use
        is left is decided atomically at checkout, not here.)"""
        now = now or utcnow()
        if not self.active or (self.starts_at and now < self.starts_at):
            return f"The code {self.code} is not valid."
        if self.ends_at and now >= self.ends_at:
            return f"The code {self.code} has expired."
        if self.usage_limit is not None and self.times_used >= self.usage_limit:
            return f"The code {self.code} has been used up."
        if self.min_subtotal is not None and subtotal < self.min_subtotal:
            return (f"The code {self.code} needs a subtotal of at least "
                    f"{format_money(self.min_subtotal, currency)}.")
        return None


class PercentageDiscount(Discount):
    """So many percent off the subtotal, rounded half-up to the cent."""

    __mapper_args__ = {"polymorphic_identity": "percentage"}  # noqa: RUF012 (read once by SQLAlchemy)

    def amount_off(self, subtotal: Decimal) -> Decimal:
        return min(subtotal, round_cents(subtotal * (self.percent or 0) / 100))

    @property
    def description(self) -> str:
        return f"{self.percent.normalize():f}% off" if self.percent is not None else ""


class FixedAmountDiscount(Discount):
    """A fixed amount off the subtotal (never below zero)."""

    __mapper_args__ = {"polymorphic_identity": "fixed"}  # noqa: RUF012 (read once by SQLAlchemy)

    def amount_off(self, subtotal: Decimal) -> Decimal:
        return min(subtotal, self.amount or ZERO)

    @property
    def description(self) -> str:
        return f"{self.amount:,.2f} off"


class OrderStatus:
    """The states an order moves through; the moves themselves are in ``orders.py``."""

    PENDING = "pending"
    PAID = "paid"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    ALL = (PENDING, PAID, SHIPPED, DELIVERED, CANCELLED)


_AMOUNTS = ("subtotal", "discount_amount", "shipping_price", "tax", "total")


class Order(TimestampMixin, Model):
    """A placed order: who, where to, how much, and its lines (copied at purchase)."""

    __tablename__ = "orders"
    __table_args__ = (
        status_check(OrderStatus.ALL),
        CheckConstraint("total = subtotal - discount_amount + shipping_price + tax", name="total_adds_up"),
        CheckConstraint("discount_amount <= subtotal", name="discount_within_subtotal"),
        *(CheckConstraint(f"{name} >= 0", name=f"{name}_not_negative") for name in _AMOUNTS),
        # Never more refunded than the order cost (the payments ledger checks it per payment).
        CheckConstraint("refunded_total >= 0 AND refunded_total <= total", name="refunded_within_total"),
        CheckConstraint("refunded_shipping >= 0 AND refunded_shipping <= shipping_price",
                        name="refunded_shipping_within_shipping"),
        # The payment window's sweep: unpaid online orders by the end of their window.
        Index("ix_orders_status_payment_due_at", "status", "payment_due_at"),
        # A member's orders, newest first; the admin's list by status.
        Index("ix_orders_user_id_created_at", "user_id", "created_at"),
        Index("ix_orders_status_created_at_id", "status", "created_at", "id"),
        Index("ix_orders_created_at_id", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: What the customer and the shop call it: "IW-7K3F9Q2M".
    number: Mapped[str] = mapped_column(String(20), unique=True)
    #: The one-time token from the checkout form: a second submission finds this order.
    checkout_token: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(20), default=OrderStatus.PENDING)

    full_name: Mapped[str] = mapped_column(String(120))
    address_line1: Mapped[str] = mapped_column(String(200))
    address_line2: Mapped[str] = mapped_column(String(200), default="")
    city: Mapped[str] = mapped_column(String(100))
    postal_code: Mapped[str] = mapped_column(String(20))
    country: Mapped[str] = mapped_column(String(100))

    shipping_method_id: Mapped[int | None] = mapped_column(
        ForeignKey("shipping_methods.id", ondelete="SET NULL"))
    shipping_method_name: Mapped[str] = mapped_column(String(80))
    discount_id: Mapped[int | None] = mapped_column(ForeignKey("discounts.id", ondelete="SET NULL"))
    discount_code: Mapped[str | None] = mapped_column(String(40))

    subtotal: Mapped[Decimal]
    discount_amount: Mapped[Decimal]
    shipping_price: Mapped[Decimal]
    tax: Mapped[Decimal]
    total: Mapped[Decimal]

    #: How the customer pays: "manual" (bank transfer or on delivery) or an online provider
    #: ("stripe"), as configured when the order was placed.
    payment_provider: Mapped[str] = mapped_column(String(20), default="manual", server_default="manual")
    #: An online order not paid by then is cancelled and restocked; None for manual orders.
    payment_due_at: Mapped[datetime | None] = mapped_column()
    #: Given back so far (lines and shipping), and the shipping part of it.
    refunded_total: Mapped[Decimal] = mapped_column(default=Decimal(0), server_default=text("0"))
    refunded_shipping: Mapped[Decimal] = mapped_column(default=Decimal(0), server_default=text("0"))

    user: Mapped[User | None] = relationship()
    items: Mapped[list[OrderItem]] = relationship(
        back_populates="order", cascade="all, delete-orphan", passive_deletes=True, lazy="raise_on_sql",
        order_by="OrderItem.id",
    )

    def __repr__(self) -> str:
        return f"<Order {self.number} {self.status}>"


class OrderItem(Model):
    """A line of an order: what was bought, described as it was at purchase, so later edits
    to (or deactivation of) the product leave the order as the customer placed it."""

    __tablename__ = "order_items"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_price >= 0", name="unit_price_not_negative"),
        CheckConstraint("refunded_quantity >= 0 AND refunded_quantity <= quantity",
                        name="refunded_quantity_within_quantity"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    # Kept for restocking on cancel and for reports; the snapshot below is what the order shows.
    variant_id: Mapped[int | None] = mapped_column(ForeignKey("variants.id", ondelete="SET NULL"), index=True)
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id", ondelete="SET NULL"), index=True)
    product_name: Mapped[str] = mapped_column(String(200))
    variant_label: Mapped[str] = mapped_column(String(80), default="")
    sku: Mapped[str | None] = mapped_column(String(64))
    unit_price: Mapped[Decimal]
    quantity: Mapped[int]
    #: Units given back by refunds so far.
    refunded_quantity: Mapped[int] = mapped_column(default=0, server_default=text("0"))

    order: Mapped[Order] = relationship(back_populates="items")

    @hybrid_property
    def line_total(self) -> Decimal:
        return self.unit_price * self.quantity

    @line_total.inplace.expression
    @classmethod
    def _line_total_expression(cls) -> Any:
        return type_coerce(cls.unit_price * cls.quantity, Money())

    @property
    def description(self) -> str:
        return f"{self.product_name} — {self.variant_label}" if self.variant_label else self.product_name
