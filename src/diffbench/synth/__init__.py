"""Deterministic synthetic data in the upstream layouts, for the embedded samples, tests and benchmarks."""
