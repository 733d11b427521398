"""Hybrid-parallel (DP x PP x TP) jobs: op-level traces, profiler import, the dependency model, replay and what-if."""
