"""Benchmarks and load commands, run as modules from the repository root:
``.venv/bin/python -m bench.projector``, ``-m bench.api``, ``-m bench.soak`` (each module's
docstring says more)."""
