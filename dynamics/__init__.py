"""dynamics: how LLM abilities grow during instruction tuning, measured at cluster scale."""

__version__ = "0.1.0"
