"""Accounts: members, roles, login sessions (the lowest domain; it imports no other)."""
