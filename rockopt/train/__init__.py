"""Training: model factory, optimizers and schedules, metrics, the loop."""
