"""Progress bars for computations: tqdm's (``tqdm.auto``: a widget in Jupyter) when tqdm is
installed, else a line on stderr. ``"auto"`` (the default) shows one only in a Jupyter
kernel."""

from __future__ import annotations

import sys

_mode = "auto"


def set_progress(mode="auto"):
    """``True``/``False``, ``"auto"`` (only in Jupyter), or a callable ``f(done, total)``
    used by every later ``compute()``."""
    global _mode
    _mode = mode


def _in_jupyter():
    return "ipykernel" in sys.modules


class _Bar:
    def __init__(self):
        self._bar = None
        self._total = None

    def __call__(self, done, total):
        if self._bar is None or total != self._total:
            self.close()
            self._total = total
            try:
                from tqdm.auto import tqdm

                self._bar = tqdm(total=total, desc="gridflow", unit="task", leave=False)
            except ImportError:
                self._bar = _TextBar(total)
        self._bar.update(done - self._bar.n)

    def close(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class _TextBar:
    def __init__(self, total):
        self.total, self.n = total, 0

    def update(self, k):
        self.n += k
        if self.n == self.total or self.n % max(1, self.total // 20) == 0:
            sys.stderr.write(f"\rgridflow: {self.n}/{self.total} tasks")
            sys.stderr.flush()

    def close(self):
        sys.stderr.write("\n")


class progress_for:
    """Context manager giving the callback for one ``compute()`` (or ``None``)."""

    def __init__(self, progress=None):
        mode = _mode if progress is None else progress
        if mode == "auto":
            mode = _in_jupyter()
        self._bar = None
        if callable(mode) and not isinstance(mode, bool):
            self.callback = mode
        elif mode:
            self._bar = _Bar()
            self.callback = self._bar
        else:
            self.callback = None

    def __enter__(self):
        return self.callback

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.close()
