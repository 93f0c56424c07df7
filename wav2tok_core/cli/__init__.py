"""The ``wav2tok`` command: one entry point whose subcommands share one error handling.

May import every layer.
"""
