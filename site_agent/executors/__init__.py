"""Executors that run attempts: local processes and Slurm batch jobs."""
