"""The foundations every other part stands on: configs, image files, noise, data, networks,
metrics and checkpoints. Nothing in `core` imports from the rest of the package."""
