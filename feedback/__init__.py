"""The bridge from clinicians' corrections to weak labels, retraining jobs and gated model versions."""
