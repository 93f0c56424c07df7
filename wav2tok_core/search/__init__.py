"""Search over token strings: the token index (edit distance, n-gram candidates), spotting inside long
recordings, and sharded tokenize/index jobs.

Imports model, data, audio and the base modules.
"""
