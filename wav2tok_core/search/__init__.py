"""Search over token strings: the token index (edit distance, n-gram candidates), spotting inside long
recordings, batch tokenization of files, and sharded tokenize/index jobs.

Imports model, data, audio and the base modules.
"""
