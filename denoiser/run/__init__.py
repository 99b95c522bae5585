"""Denoising images: `Denoiser` (load any artifact, pick a backend), tiling, quality modes,
batch jobs over files and folders, and the catalogue of available models. Builds on `core` and
`deploy`."""
