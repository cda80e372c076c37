"""Usage accounting: pricing attempt runs (pure) and the leader's loop that records them."""
