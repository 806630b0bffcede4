"""MP4 files from RGB frames, through the ffmpeg that ships inside the ``imageio-ffmpeg`` wheel.

H.264 in yuv420p plays everywhere (browsers, slides, GitHub) but needs even frame sizes, so odd sizes are padded
by one black row or column instead of being rescaled. The file is encoded under a temporary name and renamed
when closed, so a reader never finds half a video under the final name.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import numpy as np


class Mp4Writer:
    """Append ``(H, W, 3)`` (or RGBA) uint8 frames at a fixed frame rate; ``close()`` or leaving ``with`` finishes."""

    def __init__(self, path: str | Path, fps: float, quality: float = 7.0) -> None:
        if fps <= 0:
            raise ValueError(f"video fps must be positive, got {fps}")
        self.path, self.fps, self.quality = Path(path), float(fps), quality
        self._tmp = self.path.with_name(self.path.name + ".part.mp4")
        self._encoder = None
        self._size: tuple[int, int] | None = None  # (height, width) of the first frame; the rest must match
        self.frames = 0

    def append(self, frame: np.ndarray) -> None:
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] not in (3, 4) or frame.dtype != np.uint8:
            raise ValueError(f"a video frame is (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
        if self._size is None:
            self._open(frame.shape[:2])
        if frame.shape[:2] != self._size:
            raise ValueError(f"frame size {frame.shape[:2]} differs from the video's {self._size}")
        h, w = self._size
        padded = np.zeros((h + h % 2, w + w % 2, 3), dtype=np.uint8)
        padded[:h, :w] = frame[..., :3]
        self._encoder.send(np.ascontiguousarray(padded))
        self.frames += 1

    def close(self) -> Path | None:
        """Finish the file; returns its path, or None when no frame was written (then no file is made)."""
        if self._encoder is None:
            return None
        encoder, self._encoder = self._encoder, None
        encoder.close()
        os.replace(self._tmp, self.path)
        return self.path

    @property
    def seconds(self) -> float:
        return self.frames / self.fps

    def _open(self, size: tuple[int, int]) -> None:
        import imageio_ffmpeg

        self._size = size
        h, w = size
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._encoder = imageio_ffmpeg.write_frames(str(self._tmp), (w + w % 2, h + h % 2), fps=self.fps,
                                                    codec="libx264", quality=self.quality, macro_block_size=1,
                                                    output_params=["-preset", "veryfast"])  # fmt: skip
        self._encoder.send(None)  # start ffmpeg

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()  # what was recorded before an error is kept


def read_video(path: str | Path) -> Iterator[np.ndarray]:
    """Decode a video file to ``(H, W, 3)`` uint8 frames (for checks and tests)."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    w, h = meta["size"]
    for raw in reader:
        yield np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 3)


def video_info(path: str | Path) -> dict:
    """Frame size, frame rate and duration that ffmpeg reports for a video file."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    reader.close()
    return {"size": tuple(meta["size"]), "fps": meta["fps"], "duration": meta["duration"]}
