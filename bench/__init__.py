"""Benchmarks and load commands; run them as scripts (see each module's docstring)."""
