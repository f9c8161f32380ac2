"""The keeper's TensorBoard mirror (``[export] tensorboard_dir``): a thread that follows the run's log for
the keeper's whole life. It is a reader like any front end, so the worker never waits on it, and a mirror
that cannot work (tensorboardX missing, the folder unwritable, a full disk) is one warning in the run's log,
never the run's end."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable

from trm_core.rundir.records import Event, WarningEvent

READ_EVERY_S = 5.0


class LiveMirror:
    def __init__(self, run_dir: Path, folder: str, emit: Callable[[Event], None]) -> None:
        from trm_core.export.tensorboard import out_under

        self.run_dir, self.emit = run_dir, emit
        self.out = out_under(Path(folder), run_dir)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._follow, name="tensorboard-mirror", daemon=True)

    def start(self) -> "LiveMirror":
        self.thread.start()
        return self

    def _follow(self) -> None:
        mirror = None
        try:
            from trm_core.export.tensorboard import TensorBoardMirror

            mirror = TensorBoardMirror(self.run_dir, self.out)
            mirror.follow(self.stop, READ_EVERY_S)
        except Exception as exc:  # anything: the run goes on without its mirror, and the log says why
            self.emit(WarningEvent(message=f"the TensorBoard mirror into {self.out} stopped: {exc}; the run goes "
                                           f"on (mirror it by hand: trm-tui export tensorboard --run-dir "
                                           f"{self.run_dir} --follow)"))
        finally:
            if mirror is not None:
                mirror.close()

    def close(self, timeout_s: float = 30.0) -> None:
        """A last read (the run's final events), then the thread ends."""
        self.stop.set()
        self.thread.join(timeout_s)
