"""Benchmarks and the fault-injection harness (run as scripts; importable by the tests)."""
