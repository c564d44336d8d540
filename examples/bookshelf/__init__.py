"""A small FastAPI application on repocket's async API (see README.md)."""
