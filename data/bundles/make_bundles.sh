#!/usr/bin/env bash
# Rebuild the demo bundles in this folder from the SST-2 and the Chinese product-review configs: train
# each cell, then export its best checkpoint with its accuracy on the validation split in meta.json.
#   bash data/bundles/make_bundles.sh          (from the repository root; about 75 minutes on 2 CPU cores)
set -euo pipefail
cd "$(dirname "$0")/../.."
for data in sst2 zh-shopping; do
  validation="data/${data/-/_}/validation.parquet"   # data/sst2, data/zh_shopping
  for cell in rnn lstm gru; do
    root="runs/demo-$data-$cell"
    rm -rf "$root"
    sentikit fit -c "configs/$data-$cell.yaml" --trainer.default_root_dir "$root" --trainer.enable_progress_bar false --trainer.callbacks '[]'
    sentikit export --ckpt "$root/lightning_logs/version_0/checkpoints/best.ckpt" --out "data/bundles/$data-$cell" \
      --validation "$validation" --force
  done
done
