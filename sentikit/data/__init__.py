"""Text -> token ids -> batches: sources (local files, hub ids), labels, the tokenizer, length-bucketed
and DDP-sharded batches. Imports nothing of sentikit above `errors`, `atomic` and `checkpoint`."""
