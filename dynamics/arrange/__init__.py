"""Arrangement stage: embeddings (Ray Data), similarity scores and the registered orders (SPEC §2)."""
