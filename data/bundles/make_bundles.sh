#!/usr/bin/env bash
# Rebuild the demo bundles in this folder: train each cell on each config, then export its best
# checkpoint with its accuracy on a validation split in meta.json (and, for the English bundles, on the
# other held-out files in meta.json's `scores`).
#   bash data/bundles/make_bundles.sh          (from the repository root; about 3.5 hours on 2 CPU cores)
# The English bundles need IMDB: online, configs/english-*.yaml fetch it from the hub; offline, save a
# copy in data/imdb/ and point the configs at it (data/README.md). IMDB's test split is scored when
# data/imdb/test.parquet is there.
set -euo pipefail
cd "$(dirname "$0")/../.."
for data in english sst2 zh-shopping; do
  case $data in
    english) validation=data/sst2/validation.parquet
             scores=(--score data/sst2/test.parquet --score data/amazon/electronics/validation.parquet --score data/amazon/kitchen/validation.parquet)
             if [ -f data/imdb/test.parquet ]; then scores+=(--score data/imdb/test.parquet); fi ;;
    *) validation="data/${data/-/_}/validation.parquet"; scores=() ;;   # data/sst2, data/zh_shopping
  esac
  for cell in rnn lstm gru; do
    root="runs/demo-$data-$cell"
    rm -rf "$root"
    sentikit fit -c "configs/$data-$cell.yaml" --trainer.default_root_dir "$root" --trainer.enable_progress_bar false --trainer.callbacks '[]'
    sentikit export --ckpt "$root/lightning_logs/version_0/checkpoints/best.ckpt" --out "data/bundles/$data-$cell" \
      --validation "$validation" "${scores[@]}" --force
  done
done
