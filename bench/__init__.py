"""Benchmarks run by ``twin bench ...``: figures printed, never asserted in unit tests."""
