"""Matplotlib set-up and the figures of one run; the studies and the what-if analysis draw their own
figures with it.
"""
