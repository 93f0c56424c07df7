"""``python -m wav2tok_core.train``: the reference code's training entry point, with its flag names."""
import sys

from ..cli.train import main

sys.exit(main())
