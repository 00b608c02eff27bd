#!/usr/bin/env bash
# Launch `landzoo fit` with torchrun: one process per GPU, on one node or several.
#
#   one node, all its GPUs:   scripts/torchrun.sh configs/bigearthnet-v1/wrn_eca_b4.yaml
#   one node, 4 GPUs:         GPUS=4 scripts/torchrun.sh CONFIG [key=value ...]
#   two nodes (run on each):  NNODES=2 NODE_RANK=0|1 MASTER_ADDR=node0 GPUS=4 scripts/torchrun.sh CONFIG
#
# Lightning reads torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT), so the config only
# has to say how many devices per node and how many nodes; this script passes both as overrides. Remember that
# data.batch_size is the GLOBAL batch (it is split over all processes) and check the lr rule (optim.lr_scaling).
# Add --resume (after the config) to continue a run from its last checkpoint.
set -euo pipefail
CONFIG=${1:?usage: scripts/torchrun.sh CONFIG [key=value ...] [--resume]}
shift
GPUS=${GPUS:-$(nvidia-smi -L 2>/dev/null | wc -l)}
GPUS=${GPUS:-1}
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-29500}
PYTHON=${PYTHON:-python}

exec "$PYTHON" -m torch.distributed.run \
  --nnodes="$NNODES" --node_rank="$NODE_RANK" --nproc_per_node="$GPUS" \
  --master_addr="$MASTER_ADDR" --master_port="$MASTER_PORT" \
  -m landzoo fit --config "$CONFIG" \
  trainer.accelerator=gpu trainer.devices="$GPUS" trainer.num_nodes="$NNODES" trainer.strategy=ddp "$@"
