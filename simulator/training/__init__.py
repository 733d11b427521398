"""Real JAX training driven by the event model, its checkpoints, and running one configuration end to end."""
