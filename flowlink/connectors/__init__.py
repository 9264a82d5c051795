"""Connectors: how Flowlink reads from and writes to business applications (sql, rest, file)."""
