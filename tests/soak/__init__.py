"""The bank soak test: concurrent transfers under injected faults, checked by invariants."""
