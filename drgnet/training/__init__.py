"""Training: tasks (batch -> named losses), the loop, checkpoints."""
