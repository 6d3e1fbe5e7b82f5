import sys

from connector.runtime.stopping import StopRequested, install_early, report_early_stop

# Before the heavy imports: a SIGTERM while they run ends the process with 0, not Python's 143.
install_early()
try:
    from connector.cli import main
except StopRequested as exc:
    report_early_stop(exc)
    sys.exit(0)

sys.exit(main())
