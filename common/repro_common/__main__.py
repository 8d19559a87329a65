import sys

from repro_common.cli import main

sys.exit(main())
