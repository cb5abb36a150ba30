"""Evaluation: test loss per task in the training loop (SPEC §4)."""
