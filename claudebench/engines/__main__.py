"""`python -m claudebench.engines start|stop|status`."""

import sys

from claudebench.engines import main

sys.exit(main())
