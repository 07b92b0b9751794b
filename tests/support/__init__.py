"""Helpers the tests share: ledgers, workers, activity doubles, transfers and processes.

Fixtures live in the conftest files; what a test calls lives here.
"""
