"""Models in memory: loading checkpoints from the Hub cache, inference speed-ups, and the shared registry."""
