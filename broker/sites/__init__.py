"""Member sites as the broker knows them: the liveness registry and the agents' sessions."""
