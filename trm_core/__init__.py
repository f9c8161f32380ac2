"""trm_core: everything that is not UI. Config, TRM model, data, trainer, checkpoints, events, worker.

Never imports Textual: the dashboard, the headless front end and scripts all build on this package.
"""

__version__ = "0.2.0"  # the one home of the version; CHANGELOG.md says what each one changed
