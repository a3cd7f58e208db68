"""Models: resolving what --model names, the encoders that run it, and their token features."""
