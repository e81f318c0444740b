"""``python -m csms``: the same as the ``csms`` command."""

import sys

from csms.cli import main

sys.exit(main())
