"""Benchmark harness of mgr-supervisor against its peers (docs/benchmarks.md)."""
