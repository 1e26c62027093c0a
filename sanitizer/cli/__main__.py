"""``python -m sanitizer.cli``: the ``sanitize`` command."""

import sys

from sanitizer.cli.main import main

sys.exit(main())
