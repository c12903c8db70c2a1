"""``python -m opseal.client.cli``: the ``opseal`` command."""

import sys

from . import main

sys.exit(main())
