"""The broker's web console: an edge like broker.rpc, reading through the same domain services."""
