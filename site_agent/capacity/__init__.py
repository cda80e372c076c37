"""Capacity sources: static configuration, a host probe, and Slurm."""
