"""Progress bars for long work (corpus generation, featurisation) on stderr: one line redrawn in
place on a terminal, a throttled line every few seconds in a log file; drawn at verbosity 1 and
above (vgs.log)."""

from __future__ import annotations

import sys
import time

from vgs.log import shows_progress

BAR = 24  # characters of the bar


def bar_line(label: str, done: int, total: int, unit: str, elapsed: float, final: bool = False) -> str:
    """'label [##########··········]  42% 630/1500 utt (250.3 utt/s, ETA 3 s)'."""
    fraction = min(1.0, done / total) if total else 1.0
    filled = round(fraction * BAR)
    rate = done / max(elapsed, 1e-9)
    eta = (total - done) / rate if rate > 0 else float("inf")
    tail = f"in {elapsed:.1f} s" if final else f"ETA {eta:.0f} s"
    return (
        f"{label} [{'#' * filled}{'·' * (BAR - filled)}] {fraction:4.0%} {done}/{total} {unit} "
        f"({rate:.1f} {unit}/s, {tail})"
    )


class Progress:
    def __init__(self, label: str, total: int, unit: str = "it", every_s: float = 5.0, stream=None):
        self.label, self.total, self.unit = label, total, unit
        self.stream = stream or sys.stderr
        self.live = getattr(self.stream, "isatty", lambda: False)()  # a terminal: redraw one line
        self.every_s = 0.2 if self.live else every_s
        self.done = 0
        self.start = self._last = time.time()

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.time()
        if now - self._last >= self.every_s:
            self._last = now
            self._print(now)

    def _print(self, now: float, final: bool = False) -> None:
        if not shows_progress():
            return
        line = bar_line(self.label, self.done, self.total, self.unit, now - self.start, final)
        if self.live:
            self.stream.write("\r" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        self._print(time.time(), final=True)
