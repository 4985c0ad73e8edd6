"""Fixtures of the deployment tests."""

from tests.deploy._pgroles import stack  # noqa: F401  (the hub's roles on a secured Postgres)
