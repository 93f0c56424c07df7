"""Evaluation: ranking and spotting metrics, DTW and k-means baselines, query conditions, the method
registry, the protocol runner and its report.

Imports search, model, data, audio and the base modules.
"""
