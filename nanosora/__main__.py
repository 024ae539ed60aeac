import sys

from nanosora.cli import main

sys.exit(main())
