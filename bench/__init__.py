"""Benchmarks: what a fan-out to thousands costs, side by side with raw RQ on the same Redis."""
