"""Saved runs: the SQLite store, permalinks, export and import."""
