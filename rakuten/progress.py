"""Progress of a long stage, whether or not anyone watches a terminal.

On a terminal, tqdm's bar. Elsewhere (a log file, CI, `mlflow run` piping its output) a line at
least every `every` seconds (`$RAKUTEN_PROGRESS_SECONDS`, 30): items done, rate, time left. In both
cases, once the items after the first update have been timed for `settle` seconds (5: the first
batches pay for warm-up, oneDNN building its kernels for each new shape; timing one or two of them
promised 18-21 min for a training of 13-14 on 2 cores of an Intel Xeon) and over `settle_updates`
updates (1; a training's batches differ, their texts' lengths and so their shapes: one of them
promised 83 min for fits of 41-53 on 2 cores of an AMD EPYC without AMX; 8 of them promised 16 min
for 26 there, 32 (about a minute, what e5's loop asks for) 19 for 27: its first minute runs a third
faster than the rest, partly the machine (plain fp32 matrix products there: 195 GFLOP/s the first 30
s, 156-188 after); nothing foresees the machine's load changing later), a stage that will take
longer than `announce_over` seconds (twice `every`) says so first ("e5 on 4,972 texts: about 3 min
here"), so nobody waits in silence for an hour.
"""

from __future__ import annotations

import os
import sys
import time

EVERY_ENV = "RAKUTEN_PROGRESS_SECONDS"  # how often a line is written off a terminal (30)


def duration(seconds: float) -> str:
    """'45 s', '3 min', '1 h 20 min'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


class Progress:
    def __init__(self, total: int, what: str, label: str, every: float | None = None,
                 announce_over: float | None = None, stream=None, settle: float = 5.0, settle_updates: int = 1):
        self.total, self.what, self.label = total, what, label
        self.every = every if every is not None else float(os.environ.get(EVERY_ENV) or 30)
        self.announce_over = announce_over if announce_over is not None else 2 * self.every
        self.settle, self.settle_updates = settle, settle_updates
        self.updates = 0
        self.stream = stream or sys.stdout
        self.done = 0
        self.first: tuple[int, float] | None = None  # (items, time) at the first update: the warm-up
        self.started = self.last_line = time.monotonic()
        self.announced = False
        self.bar = None
        if self.stream.isatty() and total >= 64:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=label, unit=f" {what}", leave=False, file=self.stream)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()

    def update(self, count: int) -> None:
        self.done += count
        self.updates += 1
        now = time.monotonic()
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        if self.first is None:
            self.first = (self.done, now)
        elif (not self.announced and self.done < self.total and now - self.first[1] >= self.settle
              and self.updates > self.settle_updates):
            self.announced = True
            steady = (self.done - self.first[0]) / max(now - self.first[1], 1e-9)
            estimate = elapsed + (self.total - self.done) / steady
            if estimate > self.announce_over:
                self._say(f"{self.label} on {self.total:,} {self.what}: about {duration(estimate)} here "
                          f"(timed on {self.done - self.first[0]:,} after the first {self.first[0]:,})")
        if self.bar is not None:
            self.bar.update(count)
        elif self.announced and now - self.last_line >= self.every and self.done < self.total:
            self.last_line = now
            self._say(f"{self.label}: {self.done:,}/{self.total:,} {self.what} in {duration(elapsed)}, {rate:.1f}/s, "
                      f"about {duration(left)} left")

    def _say(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)
