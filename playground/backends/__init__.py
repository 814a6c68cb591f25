"""Model backends: the only package that imports torch and transformers."""
