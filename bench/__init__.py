"""ComputeNet benchmarks: each bench_*.py module exposes run(smoke) -> dict of results."""
