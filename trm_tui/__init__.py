"""trm_tui: the command line and front ends (the dashboard and the headless mode) over trm_core."""
