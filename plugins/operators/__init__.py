"""Flowlink's operators: each touchpoint runs extract -> transform -> load."""
