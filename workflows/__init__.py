"""Deterministic orchestration: the saga helper and the transfer workflow."""
