"""JAX models (``models.zoo``: pure ``init`` / ``loss`` / ``predict``) and datasets (``models.datasets``).

This package's top level imports nothing heavy, so that timing-only runs never import JAX.
"""
