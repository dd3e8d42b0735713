"""Helpers for testing and benchmarking zq against real parts (a throwaway PostgreSQL)."""
