"""A user's module whose own import is missing (tests/test_own_model.py)."""

import a_dependency_nobody_installed  # noqa: F401
