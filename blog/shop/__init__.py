"""The shop: catalogue, carts, checkout and orders."""
