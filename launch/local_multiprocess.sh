#!/usr/bin/env bash
# N CPU processes on this machine, each with D virtual devices: the multi-host code path (jax.distributed, gloo
# collectives, per-host data) without a cluster.
#   launch/local_multiprocess.sh 2 4 configs/tiny.py /tmp/tiny_mp [--config.x=y ...]
set -euo pipefail
if [[ $# -lt 4 ]]; then
  echo "usage: $0 NUM_PROCESSES DEVICES_PER_PROCESS CONFIG WORKDIR [--config.a.b=value ...]" >&2
  exit 2
fi
N=$1; D=$2; CONFIG=$3; WORKDIR=$4; shift 4
PORT=${PORT:-$((20000 + RANDOM % 20000))}
pids=()
for ((i = 0; i < N; i++)); do
  XLA_FLAGS="--xla_force_host_platform_device_count=$D" JAX_PLATFORMS=cpu \
    python -m mm1_jax.train --config="$CONFIG" --workdir="$WORKDIR" \
      --coordinator="localhost:$PORT" --num_processes="$N" --process_id="$i" "$@" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
exit $status
