"""Tests of rebalancing runs."""
