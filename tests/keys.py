"""The fixed encryption key of the test suite (test-only: never use it for real data).

Every test client and worker encrypts with it, the recorded histories in
tests/histories were written with it, and CLI subprocesses get it through
TRANSFER_ENCRYPTION_KEYS (set in tests/conftest.py).
"""

import base64

from app.encryption import KeyRing, encrypted_converter

TEST_KEY_ID = "test-key-1"
TEST_RING = KeyRing(((TEST_KEY_ID, bytes(range(32))),))
TEST_KEYS = f"{TEST_KEY_ID}:{base64.b64encode(bytes(range(32))).decode()}"
TEST_CONVERTER = encrypted_converter(TEST_RING)
