"""Training: the loop and its Trainer, where a process runs (DDP), solvers and schedules,
monitoring, snapshots and resuming, stopping on signals, the validation set, dead-unit revival,
memory estimates, and synthesized pair folders. Builds on `core` only."""
