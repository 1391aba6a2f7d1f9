"""Feature transformers: text (TF-IDF, `text`), picture descriptors (`pictures`), the Keras input
pipeline of the image networks (`network_input`), pretrained extractors (`pretrained`), and the signed cache
of fitted features (`cache`, `signing`)."""
