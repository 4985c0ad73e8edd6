"""Deployment operations: hub configuration helpers, row-level security, backups, doctor."""
