"""``python -m emolens.cli``: the same as the ``emolens`` command."""

import sys

from . import main

sys.exit(main())
