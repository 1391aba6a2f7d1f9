"""Feature transformers: text (TF-IDF, `text`), picture descriptors (`pictures`), the Keras input
pipeline of the image networks (`images`), pretrained extractors (`pretrained`), and the signed cache
of fitted features (`cache`, `signing`)."""
