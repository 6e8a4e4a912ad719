"""Progress over the images of a run and the tiles of the current image: two tqdm bars on
stderr (the tile bar is cleared when the run ends)."""
from __future__ import annotations

import sys


class Progress:
    """``start(name)`` before an image, ``tile(done, total)`` after each of its tiles,
    ``finish()`` after it; ``close()`` at the end. ``enabled=False`` prints nothing."""

    def __init__(self, total: int, enabled: bool = True, stream=None) -> None:
        from tqdm import tqdm  # here, not at import: the CLI's modules load without it

        stream = stream or sys.stderr
        self.images = tqdm(total=total, desc="images", unit="img", file=stream, disable=not enabled)
        self.tiles = tqdm(total=0, desc="tiles", unit="tile", leave=False, file=stream, disable=not enabled)

    def start(self, name: str) -> None:
        self.tiles.reset(total=1)
        self.tiles.set_description(f"tiles of {name}", refresh=False)

    def tile(self, done: int, total: int) -> None:
        if self.tiles.total != total:
            self.tiles.reset(total=total)
        self.tiles.update(done - self.tiles.n)

    def finish(self) -> None:
        self.images.update(1)

    def close(self) -> None:
        self.tiles.close()
        self.images.close()
