import sys

from diffbench.cli import main

sys.exit(main())
