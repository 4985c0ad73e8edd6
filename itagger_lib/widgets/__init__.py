"""Notebook widgets: thin classes over library calls (tested in pytest and in a real browser)."""
