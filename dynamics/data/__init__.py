"""Data stage: load sources, normalise to the canonical schema (SPEC §1), sample volumes."""
