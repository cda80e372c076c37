"""Tests of the client SDK, the CLI and the shared error catalog."""
