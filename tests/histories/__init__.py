"""Recorded workflow histories, replayed by tests/workflows/test_replay.py."""
