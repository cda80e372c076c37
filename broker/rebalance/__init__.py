"""rebalance package."""
