"""Benchmarks, each printing its figures against a baseline measured in the same run; run them from the
repository root as modules (`python -m bench.arrange`), so that `bench.fresh` and spawned children import."""
