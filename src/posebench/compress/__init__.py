"""Compression: recipes (recipe.py), magnitude pruning (prune.py), recovery fine-tuning (finetune.py)."""
