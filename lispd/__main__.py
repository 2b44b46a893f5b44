import sys

from lispd.cli import main

sys.exit(main())
