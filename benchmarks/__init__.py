"""Benchmarks: a load generator (loadgen) and a stack comparison (compare); see docs/benchmarks.md."""
