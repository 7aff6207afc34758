"""Benchmarks and evaluation runs of the geometry core (used by scripts/ and the lead's tools)."""
