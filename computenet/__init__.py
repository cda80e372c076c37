"""computenet package."""
