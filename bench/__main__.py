"""`python -m bench`: the same as `clinia-ingest bench`."""

import sys

from bench.cli import main

sys.exit(main())
