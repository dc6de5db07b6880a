"""Dev-only: the stack launcher (ivr up/down/status) and what only it and the tests use.
Production code never imports this package (tests/unit/test_layering.py)."""
