"""The networks: the recurrence helpers every later stage shares, the swappable fused encoder, and the
classifier (a LightningModule) with its optimiser."""
