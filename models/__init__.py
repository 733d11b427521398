"""JAX models (pure ``init(key, ...)`` / ``loss(params, batch)``) and datasets.

Empty until the trainer lands: timing-only runs need no model.
"""
