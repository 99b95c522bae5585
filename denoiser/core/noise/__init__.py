"""Noise: the kinds, each declared once (kinds), the spec grammar (spec), the batched torch ops
(ops), the camera pipeline (camera), noise statistics (stats) and a blind noise-level estimate
(estimate)."""
