"""The benchmarks' own tests: their arithmetic, and each one's real code path on tiny budgets."""
