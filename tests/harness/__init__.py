"""Test harnesses that start real services (PostgreSQL, Slurm) for the test suite and benchmarks."""
