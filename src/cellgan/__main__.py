"""``python -m cellgan``: the ``cellgan`` program (what ``torchrun ... -m cellgan train`` runs)."""

import sys

from cellgan.cli.main import main

if __name__ == "__main__":  # not when a spawned worker process re-imports this module
    sys.exit(main())
