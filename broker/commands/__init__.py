"""Offline operator commands of `computenet-broker`, registered by broker.cli."""
