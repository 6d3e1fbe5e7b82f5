"""Benchmarks: `make bench` runs bench/performance.py (docs/performance.md) and bench/bench_sandbox.py."""
