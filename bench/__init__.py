"""Benchmarks for taskgate: `make bench` runs :mod:`bench.run`; see docs/performance.md for the method."""
