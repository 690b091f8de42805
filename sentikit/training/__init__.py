"""What every training run gets: the LightningCLI wiring, checkpoints that survive a kill, an exact
resume, a stop on a diverging loss, progress lines for job logs, and denormals flushed on the CPU."""
