"""Datasets as manifests: the manifest format, the reference ``.bin`` (read and converted at the edge),
the built-in melody set and its synthesiser, FSDD, folders, splits, summaries and spotting sets.

Imports audio and the base modules.
"""
