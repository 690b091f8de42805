"""Inside the cells: every gate replayed from the fused module's weights, each word's retention in the
final memory, the exact split of the logits over the words, and the TorchScript-ready classifier that
carries all of it into bundles."""
