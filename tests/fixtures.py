"""Shared fixtures: real servers on loopback, real databases."""
