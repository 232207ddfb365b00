"""Benchmarks: run with `make bench` (they need the test dependencies)."""
