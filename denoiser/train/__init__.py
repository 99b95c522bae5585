"""Training: the loop and its Trainer, solvers and schedules, monitoring, resuming, snapshots on
signals, the validation set, dead-unit revival, memory estimates, and synthesized pair folders.
Builds on `core` only."""
