"""Test doubles: an honest in-memory cloud, an in-memory desired store, and a whole stackherd wired on them.

For the tests, the property test and the benchmark; no production module imports them."""
