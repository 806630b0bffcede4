"""``python -m app``: drive the simulated G1 with a gamepad (or keyboard) and draw obstacles live."""

from app.main import main

main()
