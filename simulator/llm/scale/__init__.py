"""Scaling a job up: a generative model fitted from its op-level trace, and synthetic jobs of any size.

``fit`` separates each op type's durations on each stage into a per-slot base, a persistent factor
per worker, per-step transients and noise; ``schedule`` lays out a Megatron pipeline of any depth
and micro-batch count; ``synth`` draws a synthetic job's durations; ``study`` replays synthetic jobs
at each size with the what-if replay and the mitigations; ``figures`` draws the result.
"""
