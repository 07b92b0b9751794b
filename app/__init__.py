"""Composition root: configuration, Temporal connection, worker, command lines."""
