"""Feature transformers: text (TF-IDF) and, later, images."""
