"""Benchmarks that need more than pytest: races between `tune` and other tuners."""
