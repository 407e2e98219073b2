"""Progress lines with rate and ETA on stderr, throttled so logs stay readable."""
from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, label: str, total: int, unit: str = "it", every_s: float = 5.0, quiet: bool = False):
        self.label, self.total, self.unit, self.every_s, self.quiet = label, total, unit, every_s, quiet
        self.done = 0
        self.start = self._last = time.time()

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.time()
        if now - self._last >= self.every_s:
            self._last = now
            self._print(now)

    def _print(self, now: float, final: bool = False) -> None:
        if self.quiet:
            return
        elapsed = max(now - self.start, 1e-9)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        tail = f"in {elapsed:.1f} s" if final else f"ETA {eta:.0f} s"
        print(f"{self.label}: {self.done}/{self.total} {self.unit} ({rate:.1f} {self.unit}/s, {tail})",
              file=sys.stderr, flush=True)

    def close(self) -> None:
        self._print(time.time(), final=True)
