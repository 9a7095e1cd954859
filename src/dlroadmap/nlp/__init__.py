"""NLP building blocks: word embeddings (and, later, tokenizers)."""
