"""Arrangement stage: embeddings (Ray Data), similarity scores and orderings (SPEC §2)."""
