"""The browser view of ``trm-tui serve`` (its command line: ``trm_tui.cli.serve``): the token guard, the
listening socket, one browser tab's trm-tui."""
