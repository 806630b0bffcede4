"""``python -m app``: drive the simulated G1 with a gamepad (or keyboard) and draw obstacles live."""

import sys

from app.main import main

sys.exit(main())
