"""Accuracy through the deployed runtime: data, shared pre/post-processing, metrics, the validator."""
