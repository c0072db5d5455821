"""A db_driver for the test that `self.db` is imported at its first use."""

ANSWER = 42
