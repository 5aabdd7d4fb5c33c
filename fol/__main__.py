import sys

from fol.cli import main

sys.exit(main())
