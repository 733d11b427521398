#!/usr/bin/env bash
# Remake every shipped trace: each job with rank 1 slowed (30 ms per step; 20 ms in DP 2 x PP 2, where it is
# one of two replicas) and with no straggler; 10 profiled steps each. Run it on an idle machine.
set -euo pipefail
cd "$(dirname "$0")"
for job in ddp allreduce fsdp dp2pp2; do
    delay=0.03
    [ "$job" = dp2pp2 ] && delay=0.02
    python make_traces.py --job "$job" --slow-rank 1 --delay "$delay" --steps 10 --out "$job-slow1"
    python make_traces.py --job "$job" --steps 10 --out "$job-none"
done
