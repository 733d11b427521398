"""A user's module that raises when imported (tests/test_own_model.py)."""

raise ZeroDivisionError("division by zero at import")
