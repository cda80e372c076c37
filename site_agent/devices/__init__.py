"""Accelerator devices at a site: which vendor a model is, what a host has, who holds which."""
