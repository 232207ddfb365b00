"""The shop's error type; the use cases that need more (``OutOfStock``, ``ImageError``,
``CatalogFileError``) subclass it beside the code that raises them."""

from __future__ import annotations

from blog.errors import ServiceError


class ShopError(ServiceError):
    """A shop request that cannot be carried out; ``field`` names the form field, if any."""
