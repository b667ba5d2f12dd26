"""VBench-Long clip bookkeeping, for a whole video or a stream.

VBench-Long scores a long video by cutting it into fixed-length clips (2 s for the quality dimensions),
scoring each clip like a short VBench video and averaging over clips. Its splitter
(``split_video_into_clips``) takes ``int(fps) * duration`` frames per clip, cuts consecutive clips, and if
frames are left over adds one more clip made of the *last* ``clip_len`` frames (borrowing frames from the
previous clip); a video shorter than one clip is scored whole. lolbench mirrors that rule exactly.

``ClipWindow`` applies the rule to a stream while holding only the last ``clip_len`` frames.
"""

from __future__ import annotations

import numpy as np


def clip_length(fps: float, clip_seconds: float) -> int:
    """Frames per VBench-Long clip: ``int(fps) * clip_seconds`` (VBench reads fps as an integer), rounded."""
    if fps <= 0 or clip_seconds <= 0:
        raise ValueError(f"fps and clip_seconds must be positive, got fps={fps}, clip_seconds={clip_seconds}")
    length = round(int(fps) * clip_seconds)
    if length < 2:
        raise ValueError(f"a clip needs at least 2 frames, got int(fps)*clip_seconds = {int(fps)}*{clip_seconds}")
    return length


def clip_spans(n_frames: int, clip_len: int) -> list[tuple[int, int]]:
    """VBench-Long clips of a video as (start, stop) frame ranges, in order."""
    if n_frames <= 0:
        return []
    if n_frames < clip_len:
        return [(0, n_frames)]
    spans = [(start, start + clip_len) for start in range(0, n_frames - clip_len + 1, clip_len)]
    if n_frames % clip_len:
        spans.append((n_frames - clip_len, n_frames))
    return spans


class ClipWindow:
    """Ring buffer of the last ``clip_len`` frames that knows where VBench-Long clips end."""

    def __init__(self, clip_len: int) -> None:
        self.clip_len = clip_len
        self.reset()

    def reset(self) -> None:
        self.n_frames = 0
        self._ring: np.ndarray | None = None  # [clip_len, H, W, 3]

    def push(self, frame: np.ndarray) -> bool:
        """Add one frame [H, W, 3]; True when it completes a full clip (then ``frames()`` is that clip)."""
        if self._ring is None:
            self._ring = np.empty((self.clip_len, *frame.shape), dtype=frame.dtype)
        elif frame.shape != self._ring.shape[1:]:
            raise ValueError(f"frame size changed mid-video: {frame.shape} after {self._ring.shape[1:]}")
        self._ring[self.n_frames % self.clip_len] = frame
        self.n_frames += 1
        return self.n_frames % self.clip_len == 0

    def frames(self) -> np.ndarray:
        """The buffered frames in video order: [min(n_frames, clip_len), H, W, 3] (a copy)."""
        if self._ring is None:
            raise ValueError("no frames pushed yet")
        if self.n_frames <= self.clip_len:
            return self._ring[: self.n_frames].copy()
        return np.roll(self._ring, -(self.n_frames % self.clip_len), axis=0)

    def pending_span(self) -> tuple[int, int] | None:
        """(start, stop) of the clip VBench-Long adds after the last full clip, or None if none is owed.

        That is the whole video while it is shorter than one clip, or the last ``clip_len`` frames when
        frames are left over after the last full clip; either way the buffer holds exactly that clip.
        """
        if self.n_frames == 0 or (self.n_frames >= self.clip_len and self.n_frames % self.clip_len == 0):
            return None
        return max(0, self.n_frames - self.clip_len), self.n_frames

    def pending_clip(self) -> tuple[int, np.ndarray] | None:
        """The pending clip as (start frame, frames), or None (see ``pending_span``)."""
        span = self.pending_span()
        return None if span is None else (span[0], self.frames())
