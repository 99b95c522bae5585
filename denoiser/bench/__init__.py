"""Measuring: quality under the benchmark protocol (`denoiser eval`), speed per backend and
precision (`denoiser bench`), and the peers timed beside ours. Builds on `run`."""
