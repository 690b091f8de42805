"""From gates to words: per-word contributions, retention, occlusion and memory decay for one review,
how faithful they are, how they are printed, and `sentikit explain`."""
