"""The site owners' area: dashboard, products, orders, members, moderation, discounts, audit."""
