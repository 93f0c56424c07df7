"""``python -m wav2tok_core.cli``: the ``wav2tok`` command (also under ``torchrun``)."""
import sys

from .main import main

sys.exit(main())
