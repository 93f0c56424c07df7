"""The tokenizer: config, encoders, the cosine codebook and its k-means, token strings, the wav2tok model
with batched inference, and checkpoints.

Imports data, audio and the base modules.
"""
