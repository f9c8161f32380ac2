"""The worker process (``python -m trm_core.worker``): its set-up (``process``), the training loop in one run
dir (``run``), the watchdog that turns a hang into an exit (``watchdog``), the graceful stop (``stop``), and
fault injection for the test suite (``faults``). Nothing is imported here, so ``python -m`` runs clean."""
