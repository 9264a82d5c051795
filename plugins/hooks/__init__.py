"""Hooks: they own connections and I/O for the operators."""
