import sys

from connector.runtime.stopping import StopRequested, install_early

# Before the heavy imports: a SIGTERM while they run ends the process with 0, not Python's 143.
install_early()
try:
    from connector.cli import main
except StopRequested:
    sys.exit(0)

sys.exit(main())
