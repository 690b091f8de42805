#!/usr/bin/env bash
# Rebuild the demo bundles in this folder from the SST-2 configs: train each cell, then export its best
# checkpoint with its accuracy on the SST-2 validation split recorded in meta.json.
#   bash data/bundles/make_bundles.sh          (from the repository root; about 25 minutes on 2 CPU cores)
set -euo pipefail
cd "$(dirname "$0")/../.."
for cell in rnn lstm gru; do
  root="runs/demo-$cell"
  rm -rf "$root"
  sentikit fit -c "configs/sst2-$cell.yaml" --trainer.default_root_dir "$root" --trainer.enable_progress_bar false --trainer.callbacks '[]'
  sentikit export --ckpt "$root/lightning_logs/version_0/checkpoints/best.ckpt" --out "data/bundles/sst2-$cell" \
    --validation data/sst2/validation.parquet --force
done
