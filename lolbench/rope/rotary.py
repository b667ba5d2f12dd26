"""Apply 3D RoPE to per-head queries or keys of whole frames."""

from __future__ import annotations

import torch
from torch import Tensor

from lolbench.rope.tables import RopeTables


class Rotary:
    """Applies 3D RoPE to per-head queries/keys of whole frames.

    Head dims ``[0:d_t]`` rotate with the frame's temporal position, then height, then width with the token's
    row and column in the ``grid_h x grid_w`` grid. Adjacent dims ``(x[2i], x[2i+1])`` form one complex pair,
    as in Wan. Temporal angles ``pos·ω`` are computed in float64 on the CPU for exactly the positions asked
    for (no table of fixed length), so positions of 10^6 and beyond keep their phase to ~1e-10 rad; only
    then are cos/sin cast. Spatial cos/sin depend on the fixed grid alone and are cached.
    """

    def __init__(self, tables: RopeTables, grid_h: int, grid_w: int):
        if grid_h < 1 or grid_w < 1:
            raise ValueError(f"grid must be at least 1x1, got grid_h={grid_h}, grid_w={grid_w}")
        self.tables = tables
        self.grid_h = grid_h
        self.grid_w = grid_w
        self.tokens_per_frame = grid_h * grid_w
        rows = torch.arange(grid_h, dtype=torch.float64).repeat_interleave(grid_w)  # [P], row-major tokens
        cols = torch.arange(grid_w, dtype=torch.float64).repeat(grid_h)  # [P]
        spatial = torch.cat(
            [rows[None, :, None] * tables.height[:, None, :], cols[None, :, None] * tables.width[:, None, :]],
            dim=-1,
        )  # [H, P, Kh + Kw]
        self._spatial = (spatial.cos(), spatial.sin())
        self._spatial_cast: dict[tuple[torch.device, torch.dtype], tuple[Tensor, Tensor]] = {}

    def _spatial_cos_sin(self, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        key = (device, dtype)
        if key not in self._spatial_cast:
            self._spatial_cast[key] = tuple(t.to(device=device, dtype=dtype) for t in self._spatial)
        return self._spatial_cast[key]

    def _check(self, x: Tensor, frame_pos: Tensor) -> None:
        if frame_pos.ndim != 1 or frame_pos.dtype == torch.bool or frame_pos.is_complex() or (
            frame_pos.is_floating_point() and frame_pos.dtype != torch.float64
        ):
            raise TypeError(
                f"frame_pos must be a 1-D integer or float64 tensor, got shape {tuple(frame_pos.shape)} "
                f"{frame_pos.dtype} (lower-precision floats lose the phase of large positions)"
            )
        expected = (self.tables.num_heads, len(frame_pos) * self.tokens_per_frame, self.tables.head_dim)
        if x.ndim != 4 or (x.shape[1], x.shape[2], x.shape[3]) != expected:
            raise ValueError(
                f"x must be [B, H, F*P, D] = [B, {expected[0]}, {expected[1]}, {expected[2]}] for "
                f"{len(frame_pos)} frames of {self.tokens_per_frame} tokens, got {tuple(x.shape)}"
            )

    def rotate(self, x: Tensor, frame_pos: Tensor) -> Tensor:
        """x: [B, H, F*P, D] (tokens frame-major, row-major within a frame); frame_pos: [F] temporal positions
        (int64 or float64). Returns x rotated, same dtype/device.

        The product is taken in at least float32 so half-precision inputs are rounded only once, at the end.
        """
        self._check(x, frame_pos)
        heads, frames, tokens = self.tables.num_heads, len(frame_pos), self.tokens_per_frame
        dtype = torch.promote_types(x.dtype, torch.float32)
        pos = frame_pos.detach().to(device="cpu", dtype=torch.float64) * self.tables.time_scale  # [F]
        angles = pos[None, :, None] * self.tables.time[:, None, :]  # [H, F, Kt]
        t_cos, t_sin = (a.to(device=x.device, dtype=dtype) for a in (angles.cos(), angles.sin()))
        s_cos, s_sin = self._spatial_cos_sin(x.device, dtype)  # [H, P, Ks]

        def per_token(temporal: Tensor, spatial: Tensor) -> Tensor:
            shape = (heads, frames, tokens)
            return torch.cat(
                [temporal[:, :, None, :].expand(*shape, -1), spatial[:, None, :, :].expand(*shape, -1)], dim=-1
            ).reshape(heads, frames * tokens, -1)  # [H, F*P, D/2]

        cos, sin = per_token(t_cos, s_cos), per_token(t_sin, s_sin)
        x0, x1 = x.to(dtype).unflatten(-1, (-1, 2)).unbind(-1)  # [B, H, F*P, D/2] each
        rotated = torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1)  # [B, H, F*P, D/2, 2]
        return rotated.flatten(-2).to(x.dtype)
