#!/usr/bin/env bash
# Train on every worker of a TPU VM pod: the same command runs on all hosts; jax finds the pod's coordinator.
#   launch/tpu_pod.sh TPU_NAME ZONE configs/mm1_pretrain.py:decoder=3b gs://BUCKET/runs/mm1-3b [--config.x=y ...]
# The repository must already be at ~/mm1_jax on every worker (e.g. a previous `--command="git clone ..."`).
set -euo pipefail
if [[ $# -lt 4 ]]; then
  echo "usage: $0 TPU_NAME ZONE CONFIG WORKDIR [--config.a.b=value ...]" >&2
  exit 2
fi
TPU_NAME=$1; ZONE=$2; CONFIG=$3; WORKDIR=$4; shift 4
EXTRA=$(printf ' %q' "$@")
gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" --worker=all --command="
  cd ~/mm1_jax && . .venv/bin/activate &&
  python -m mm1_jax.train --config=$CONFIG --workdir=$WORKDIR $EXTRA"
