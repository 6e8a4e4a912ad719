"""Progress over images and the tiles of the current image: tqdm when it is installed,
else a one-line stderr bar (redrawn in place on a terminal, one line per image otherwise)."""
from __future__ import annotations

import sys
import time


class Progress:
    """``start(name)`` before an image, ``tile(done, total)`` after each tile, ``finish()``
    after the image; ``close()`` at the end. ``enabled=False`` prints nothing."""

    def __init__(self, total: int, enabled: bool = True, stream=None) -> None:
        self.total, self.enabled = total, enabled
        self.stream = stream or sys.stderr
        self.done, self.name = 0, ""
        self._bars = None
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self._bars = (tqdm(total=total, desc="images", unit="img", file=self.stream),
                              tqdm(total=0, desc="tiles", unit="tile", leave=False, file=self.stream))
        self._tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self._t0 = time.perf_counter()

    def start(self, name: str) -> None:
        self.name = name
        if self._bars:
            self._bars[1].reset(total=1)
            self._bars[1].set_description(f"tiles of {name}")

    def tile(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self._bars:
            bar = self._bars[1]
            if bar.total != total:
                bar.reset(total=total)
            bar.n = done
            bar.refresh()
        elif self._tty:
            self._draw(f"tile {done}/{total}")

    def finish(self) -> None:
        self.done += 1
        if not self.enabled:
            return
        if self._bars:
            self._bars[0].update(1)
        elif self._tty:
            self._draw("done")
        else:
            print(f"[{self.done}/{self.total}] {self.name}", file=self.stream, flush=True)

    def _draw(self, tail: str) -> None:
        width = 24
        filled = int(width * self.done / max(self.total, 1))
        line = f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {self.name} {tail}"
        print(line.ljust(100)[:120], end="", file=self.stream, flush=True)

    def close(self) -> None:
        if self._bars:
            for bar in self._bars:
                bar.close()
        elif self._tty:
            print(file=self.stream)
