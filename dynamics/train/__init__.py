"""Training stage: templates, ordered sharding, the DeepSpeed loop on Ray Train, the Tune trial."""
