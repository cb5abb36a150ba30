"""Text → tokens, shared by training, evaluation and data inspection: templates, encoding, collation, token NLL."""
