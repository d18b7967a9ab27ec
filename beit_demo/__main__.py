"""`python -m beit_demo ...`: the command line (see `beit_demo.cli`)."""

import sys

from beit_demo.cli import main

if __name__ == "__main__":
    sys.exit(main())
