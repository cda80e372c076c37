"""Tests of the pure placement core."""
