"""Taking money: a provider interface (manual, Stripe Checkout), the ledger of payments,
refunds and provider events, and the moves they cause on orders."""
