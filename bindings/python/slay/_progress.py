"""Progress of the long-running tools (python -m slay.bench, python -m slay.accuracy).

Rows go to stdout as soon as they are measured (flushed); a running count "[done/total]" with the
elapsed time and an ETA goes to stderr, so `> table.txt` keeps the table clean. On a terminal the
progress line is redrawn in place; otherwise it is one line per row. `quiet` silences stderr only.
"""
import sys
import time
from typing import Optional, TextIO


def format_seconds(seconds: float) -> str:
    """"42 s", "3 min 05 s", "1 h 02 min"."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return "%d s" % seconds
    if seconds < 3600:
        return "%d min %02d s" % divmod(seconds, 60)
    return "%d h %02d min" % (seconds // 3600, seconds % 3600 // 60)


class Progress:
    """A running count of `total` steps with an ETA (elapsed / done × remaining)."""

    def __init__(self, total: int, quiet: bool = False, stream: Optional[TextIO] = None,
                 out: Optional[TextIO] = None) -> None:
        self.total = max(0, int(total))
        self.done = 0
        self.quiet = quiet
        self.stream = sys.stderr if stream is None else stream
        self.out = sys.stdout if out is None else out
        self.start = time.perf_counter()
        self._live = not quiet and bool(getattr(self.stream, "isatty", lambda: False)())
        self._drawn = False

    def print(self, text: str = "") -> None:
        """A line of the report on stdout, flushed at once (the progress line is moved out of its way)."""
        self._clear()
        print(text, file=self.out, flush=True)

    def step(self, label: str) -> None:
        """One step finished: count it and show "[done/total] label, elapsed, ETA"."""
        self.done += 1
        if self.quiet:
            return
        elapsed = time.perf_counter() - self.start
        if self.done < self.total:
            eta = "ETA %s" % format_seconds(elapsed / self.done * (self.total - self.done))
        else:
            eta = "done"
        width = len(str(max(self.total, self.done)))
        line = "[%*d/%d] %s  (%s elapsed, %s)" % (width, self.done, max(self.total, self.done), label,
                                                  format_seconds(elapsed), eta)
        if self._live:
            self.stream.write("\r\033[K" + line)
            self._drawn = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Ends the in-place progress line (on a terminal), so what follows starts on a clean line."""
        self._clear()

    def _clear(self) -> None:
        if self._drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._drawn = False
