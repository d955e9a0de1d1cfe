"""``python -m nas.cli ...`` is the same as the ``nas`` console script."""

import sys

from nas.cli import main

sys.exit(main())
