"""The lowest layer: errors, files written crash-safely, the SPEC language, shipped data, the run's
records and result files.
"""
