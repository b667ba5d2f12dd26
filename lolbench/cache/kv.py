"""The streaming KV cache: storage, layout, RoPE positions and attention probes, for any model and sink policy.

A model calls ``begin_chunk``, then ``attend`` in every layer for each denoising step (``commit=False``) and
once more for the clean re-pass (``commit=True``), then ``end_chunk``. The model never sees which policy or
position mode is in use.

Storage is allocated once, on the model's device and dtype. Keys and values of every layer live in one tensor of
fixed-size *blocks* of one chunk each: a ring of blocks for the sink and local frames (slot -> chunk bookkeeping,
freed blocks reused), the blocks of the policy's chunk memory if it keeps one (DySink's bank, behind the
``ChunkMemory`` interface of lolbench.cache.memory), and one scratch block for the chunk being generated. Per call
the context is gathered from the blocks in time order, so memory and per-chunk cost do not depend on the video
length.

Positions: in ``absolute`` mode queries and keys are rotated at their frame index and keys are stored rotated,
so they keep their phase forever. In ``rolling`` mode keys are stored un-rotated and every call rotates the
context at 0..S-1 in time order and the current chunk at S..S+F-1, so no position leaves the window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lolbench.cache.policies import Selection, SinkPolicy
from lolbench.probes import AttentionProbe, FrameKind
from lolbench.rope import POSITION_MODES, Rotary


@dataclass
class ChunkStats:
    """What the cache reports about one finished chunk."""

    probes: list[AttentionProbe] | None  # one per batch element, on probed chunks only
    gate: dict[str, float]  # the chunk memory's statistics (DySink: retrieval and gate; else empty); NaN = undefined
    positions: np.ndarray  # [F] temporal positions the chunk's queries used


@dataclass
class _Layout:
    """The keys of the open chunk's attention in time order: S context frames, then the chunk's F frames."""

    frame_index: np.ndarray  # [B, S+F] absolute frame index of each key frame
    kind: np.ndarray  # [B, S+F] FrameKind
    token_index: Tensor  # [B, (S+F)*P] storage token of each key
    query_pos: Tensor  # [F] temporal positions of the chunk's queries
    key_pos: Tensor  # [S+F] positions the keys are rotated at per call (rolling mode; 0..S+F-1)


class StreamingKVCache:
    """Bounded KV cache for chunked causal video diffusion with a pluggable sink policy."""

    def __init__(
        self,
        policy: SinkPolicy,
        rotary: Rotary,
        position_mode: str,
        num_layers: int,
        batch: int,
        num_heads: int,
        head_dim: int,
        chunk_frames: int,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
        content_channels: int = 3,
    ):
        """``content_channels``: channels of the chunks ``end_chunk`` receives (3 for frames, 16 for Wan
        latents), for a policy whose chunk memory embeds them."""
        if position_mode not in POSITION_MODES:
            raise ValueError(f"position_mode={position_mode!r} is not one of {POSITION_MODES}")
        for key, value in (("num_layers", num_layers), ("batch", batch), ("num_heads", num_heads),
                           ("head_dim", head_dim), ("chunk_frames", chunk_frames)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a positive integer, got {value!r}")
        policy.check(chunk_frames)
        self.policy, self.rotary, self.position_mode = policy, rotary, position_mode
        self.num_layers, self.batch, self.num_heads, self.head_dim = num_layers, batch, num_heads, head_dim
        self.chunk_frames, self.dtype, self.device = chunk_frames, dtype, torch.device(device)
        self.tokens_per_frame = rotary.tokens_per_frame
        self._block_tokens = chunk_frames * self.tokens_per_frame

        max_local = policy.max_local_frames(chunk_frames)
        self._keep_after = max_local  # ring keeps sink frames and the last `max_local` frames
        self._max_keys = policy.sink_frames + max_local + chunk_frames  # S + F at most
        num_ring = math.ceil(policy.sink_frames / chunk_frames) + math.ceil(max_local / chunk_frames) + 1
        self._memory = policy.memory(batch, chunk_frames, self.tokens_per_frame, content_channels, self.device)
        self._memory_start = num_ring  # first block of the chunk memory
        self._scratch = num_ring + (self._memory.num_slots if self._memory else 0)  # block of the chunk generated
        shape = (num_layers, batch, num_heads, (self._scratch + 1) * self._block_tokens, head_dim)
        self._k = torch.empty(shape, dtype=dtype, device=self.device)  # [L, B, H, blocks*F*P, D]
        self._v = torch.empty(shape, dtype=dtype, device=self.device)
        self._ring_chunk = np.full(num_ring, -1, dtype=np.int64)  # chunk held by each ring block, -1 = free
        self._committed = np.zeros(num_layers, dtype=bool)
        self._probe_sum = torch.zeros(num_layers, batch, num_heads, self._max_keys, device=self.device)
        self._probe_calls = np.zeros(num_layers, dtype=np.int64)
        self.reset()

    # ------------------------------------------------------------------ chunk protocol

    def reset(self) -> None:
        """Start a new video (buffers are kept, only the bookkeeping is cleared)."""
        self._ring_chunk.fill(-1)
        if self._memory is not None:
            self._memory.reset()
        self._num_frames = 0
        self._layout: _Layout | None = None  # context of the open chunk; None between chunks
        self._pending = -1  # ring block the open chunk will occupy
        self._probe = False
        self._scale = 1.0

    @property
    def num_frames(self) -> int:
        """Frames committed since ``reset``."""
        return self._num_frames

    def begin_chunk(self, first_frame: int, probe: bool) -> None:
        """Fix the context of the chunk starting at ``first_frame`` (a chunk memory retrieves here)."""
        if self._layout is not None:
            raise RuntimeError(f"begin_chunk({first_frame}) while the chunk at frame {self._num_frames} is open; "
                               "call end_chunk(frames) first")
        if first_frame != self._num_frames:
            raise ValueError(f"begin_chunk(first_frame={first_frame}): expected {self._num_frames}, the number of "
                             "frames committed since reset()")
        if self._memory is not None:
            selections = self._memory.select(first_frame)
        else:
            selections = [self.policy.select(first_frame, self.chunk_frames)] * self.batch
        self._layout = self._build_layout(selections)
        if self._memory is not None:
            self._memory.begin(selections, self._layout.kind)
        self._pending = int(np.flatnonzero(self._ring_chunk < 0)[0])  # ring block the chunk will occupy
        self._committed[:] = False
        self._probe = probe
        if probe:
            self._probe_sum.zero_()
            self._probe_calls[:] = 0
        self._scale = self.rotary.tables.attn_scale / math.sqrt(self.head_dim)

    def attend(self, layer: int, q: Tensor, k: Tensor, v: Tensor, *, commit: bool) -> Tensor:
        """Attention of the open chunk's queries to its context and to the chunk itself.

        q, k, v: [B, H, F*P, D] un-rotated. ``commit=True`` (the clean re-pass) also stores this chunk's keys
        and values for ``layer``; ``commit=False`` leaves the cache unchanged.
        """
        layout = self._open("attend")
        self._check_input(layer, q=q, k=k, v=v)
        out_dtype = q.dtype
        q = q.to(self.dtype)
        if self.position_mode == "absolute":
            q = self.rotary.rotate(q, layout.query_pos)
        self._write_current(layer, k, v)
        if commit:
            self._store(layer)
        index = layout.token_index[:, None, :, None].expand(-1, self.num_heads, -1, self.head_dim)
        keys = self._k[layer].gather(2, index)  # [B, H, (S+F)*P, D]
        values = self._v[layer].gather(2, index)
        if self.position_mode == "rolling":
            keys = self.rotary.rotate(keys, layout.key_pos)
            q = self.rotary.rotate(q, layout.query_pos)
        mask = self._memory.mask(q, keys) if self._memory is not None else None
        if self._probe and not commit:
            out = self._probed_attention(layer, q, keys, values, mask)
        else:
            out = torch.nn.functional.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=self._scale)
        return out.to(out_dtype)

    def commit(self, layer: int, k: Tensor, v: Tensor) -> None:
        """Store the open chunk's keys and values for ``layer`` without attending (e.g. to prefill the cache
        with known frames). k, v: [B, H, F*P, D] un-rotated."""
        self._open("commit")
        self._check_input(layer, k=k, v=v)
        self._write_current(layer, k, v)
        self._store(layer)

    def end_chunk(self, frames: Tensor, embedding: Tensor | None = None) -> ChunkStats:
        """Close the open chunk: its committed keys and values join the context, a chunk memory (DySink's bank)
        observes it, and old frames are evicted.

        ``frames``: the chunk, [B, F, C, H, W] (pixels float in [-1, 1] or uint8, or latents); the memory
        embeds it unless ``embedding`` ([B, dim] unit vectors from a learned encoder) is given."""
        layout = self._open("end_chunk")
        if not self._committed.all():
            raise RuntimeError(f"end_chunk: layers {np.flatnonzero(~self._committed).tolist()} did not commit "
                               "this chunk (attend(..., commit=True) or commit())")
        if frames.ndim != 5 or tuple(frames.shape[:2]) != (self.batch, self.chunk_frames):
            raise ValueError(f"frames must be [B={self.batch}, F={self.chunk_frames}, 3, H, W], "
                             f"got {tuple(frames.shape)}")
        probes = self._probes(layout) if self._probe else None
        chunk = self._num_frames // self.chunk_frames
        self._ring_chunk[self._pending] = chunk
        gate = {}
        if self._memory is not None:
            self._store_in_memory(frames, embedding, chunk)
            gate = self._memory.stats()
        self._num_frames += self.chunk_frames
        self._evict()
        self._layout = None
        return ChunkStats(probes=probes, gate=gate, positions=layout.query_pos.numpy().copy())

    # ------------------------------------------------------------------ introspection

    @property
    def context_frames(self) -> tuple[np.ndarray, np.ndarray]:
        """(frame index, FrameKind), each [B, S], of the open chunk's context in time order."""
        layout = self._open("context_frames")
        return layout.frame_index[:, : -self.chunk_frames], layout.kind[:, : -self.chunk_frames]

    def context(self, layer: int) -> tuple[Tensor, Tensor]:
        """Keys and values [B, H, S*P, D] of the open chunk's context for ``layer``, as stored (rotated in
        absolute mode, un-rotated in rolling mode)."""
        layout = self._open("context")
        tokens = layout.token_index[:, : -self._block_tokens]
        index = tokens[:, None, :, None].expand(-1, self.num_heads, -1, self.head_dim)
        return self._k[layer].gather(2, index), self._v[layer].gather(2, index)

    def buffers(self) -> dict[str, Tensor | np.ndarray]:
        """Every preallocated buffer by name."""
        named: dict[str, Tensor | np.ndarray] = {
            "keys": self._k, "values": self._v, "ring_chunk": self._ring_chunk, "committed": self._committed,
            "probe_sum": self._probe_sum, "probe_calls": self._probe_calls,
        }
        if self._memory is not None:
            named.update(self._memory.buffers())
        return named

    def state_dict(self) -> dict[str, Any]:
        """Copies (on the CPU) of everything later chunks depend on: stored keys and values, ring bookkeeping,
        frame count and the chunk memory; plus the policy, position mode and RoPE head bases (the jitter draw),
        which must match on load. Taken between chunks; its size does not grow with the video."""
        if self._layout is not None:
            raise RuntimeError("state_dict() is taken between chunks (after end_chunk)")
        state: dict[str, Any] = {
            "policy": repr(self.policy), "position_mode": self.position_mode,
            "head_bases": self.rotary.tables.head_bases.clone(),
            "keys": self._k.detach().to("cpu", copy=True), "values": self._v.detach().to("cpu", copy=True),
            "ring_chunk": self._ring_chunk.copy(), "num_frames": self._num_frames,
        }
        if self._memory is not None:
            state["memory"] = self._memory.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state_dict()`` of a cache built with the same configuration (ValueError otherwise)."""
        for key, mine in (("policy", repr(self.policy)), ("position_mode", self.position_mode)):
            if state[key] != mine:
                raise ValueError(f"cache state was saved with {key}={state[key]!r}, this cache has {mine!r}")
        if not torch.equal(torch.as_tensor(state["head_bases"]), self.rotary.tables.head_bases):
            raise ValueError("cache state was saved with other RoPE head bases (jitter draw or rope method)")
        if tuple(state["keys"].shape) != tuple(self._k.shape):
            raise ValueError(f"cache state holds keys {tuple(state['keys'].shape)}, this cache {tuple(self._k.shape)}")
        self._k.copy_(state["keys"])
        self._v.copy_(state["values"])
        self._ring_chunk[:] = np.asarray(state["ring_chunk"])
        self._num_frames = int(state["num_frames"])
        if self._memory is not None:
            self._memory.load_state_dict(state["memory"])
        self._layout = None

    def memory_bytes(self) -> int:
        """Bytes of all preallocated buffers; constant for the life of the cache."""
        return sum(int(b.nbytes) for b in self.buffers().values())

    # ------------------------------------------------------------------ internals

    def _open(self, caller: str) -> _Layout:
        if self._layout is None:
            raise RuntimeError(f"{caller} called outside a chunk; call begin_chunk(first_frame, probe) first")
        return self._layout

    def _check_input(self, layer: int, **tensors: Tensor) -> None:
        if not 0 <= layer < self.num_layers:
            raise ValueError(f"layer={layer} is outside [0, {self.num_layers})")
        expected = (self.batch, self.num_heads, self._block_tokens, self.head_dim)
        for name, t in tensors.items():
            if tuple(t.shape) != expected:
                raise ValueError(f"{name} must be [B, H, F*P, D] = {list(expected)}, got {list(t.shape)}")
        if self._committed[layer]:
            raise RuntimeError(f"layer {layer} already committed this chunk; the clean re-pass must come last")

    def _tokens(self, block: int) -> slice:
        return slice(block * self._block_tokens, (block + 1) * self._block_tokens)

    def _write_current(self, layer: int, k: Tensor, v: Tensor) -> None:
        """Put the current chunk's keys (rotated in absolute mode) and values into the scratch block."""
        k = k.to(self.dtype)
        if self.position_mode == "absolute":
            k = self.rotary.rotate(k, self._layout.query_pos)
        scratch = self._tokens(self._scratch)
        self._k[layer, :, :, scratch] = k
        self._v[layer, :, :, scratch] = v

    def _store(self, layer: int) -> None:
        scratch, pending = self._tokens(self._scratch), self._tokens(self._pending)
        self._k[layer, :, :, pending] = self._k[layer, :, :, scratch]
        self._v[layer, :, :, pending] = self._v[layer, :, :, scratch]
        self._committed[layer] = True

    def _build_layout(self, selections: list[Selection]) -> _Layout:
        F, P, n = self.chunk_frames, self.tokens_per_frame, self._num_frames
        ring_block = {int(c): i for i, c in enumerate(self._ring_chunk) if c >= 0}
        frames, kinds, blocks = [], [], []
        for b, sel in enumerate(selections):
            retrieved = [c * F + i for c in sel.retrieved for i in range(F)]
            frames.append([*sel.sink, *retrieved, *sel.local, *range(n, n + F)])
            kinds.append([FrameKind.SINK] * len(sel.sink) + [FrameKind.RETRIEVED] * len(retrieved)
                         + [FrameKind.LOCAL] * len(sel.local) + [FrameKind.CURRENT] * F)
            blocks.append([ring_block[f // F] for f in sel.sink]
                          + [self._memory_start + self._memory.slot_of(b, f // F) for f in retrieved]
                          + [ring_block[f // F] for f in sel.local] + [self._scratch] * F)
        if len({len(f) for f in frames}) != 1:
            raise AssertionError(f"context sizes differ across the batch: {[len(f) for f in frames]}")
        frame_index = np.array(frames, dtype=np.int64)  # [B, S+F]
        kind = np.array(kinds, dtype=np.int8)
        token = (np.array(blocks)[..., None] * self._block_tokens + (frame_index % F)[..., None] * P
                 + np.arange(P))  # [B, S+F, P]
        num_keys = frame_index.shape[1]
        context = num_keys - F
        if self.position_mode == "absolute":
            query_pos = torch.arange(n, n + F)
        else:
            query_pos = torch.arange(context, num_keys)
        return _Layout(
            frame_index=frame_index, kind=kind,
            token_index=torch.from_numpy(token.reshape(self.batch, -1)).to(self.device),
            query_pos=query_pos, key_pos=torch.arange(num_keys),
        )

    def _probed_attention(self, layer: int, q: Tensor, keys: Tensor, values: Tensor, mask: Tensor | None) -> Tensor:
        """Explicit softmax attention that also adds each head's mass per key frame to the probe sums."""
        logits = (q @ keys.transpose(-2, -1)) * self._scale  # [B, H, N, (S+F)*P]
        if mask is not None:
            logits = logits.masked_fill(~mask, float("-inf"))
        weights = logits.softmax(dim=-1)
        per_frame = weights.mean(dim=2).unflatten(-1, (-1, self.tokens_per_frame)).sum(dim=-1)  # [B, H, S+F]
        self._probe_sum[layer, :, :, : per_frame.shape[-1]] += per_frame.float()
        self._probe_calls[layer] += 1
        return weights @ values

    def _probes(self, layout: _Layout) -> list[AttentionProbe]:
        if not self._probe_calls.all():
            raise RuntimeError(f"probed chunk: layers {np.flatnonzero(self._probe_calls == 0).tolist()} had no "
                               "denoising call (attend with commit=False) to measure")
        num_keys = layout.frame_index.shape[1]
        calls = torch.from_numpy(self._probe_calls).to(self._probe_sum)[:, None, None, None]
        mass = (self._probe_sum[..., :num_keys] / calls).cpu().numpy()  # [L, B, H, S+F]
        chunk = self._num_frames // self.chunk_frames
        return [AttentionProbe(chunk_index=chunk, mass=np.ascontiguousarray(mass[:, b]),
                               frame_index=layout.frame_index[b].copy(), kind=layout.kind[b].copy())
                for b in range(self.batch)]

    def _store_in_memory(self, frames: Tensor, embedding: Tensor | None, chunk: int) -> None:
        """Let the memory observe the finished chunk; where it stores it, copy its keys and values there."""
        slots = self._memory.store(frames, embedding, chunk)
        source = self._tokens(self._pending)
        for b in np.flatnonzero(slots >= 0):
            target = self._tokens(self._memory_start + int(slots[b]))
            self._k[:, b, :, target] = self._k[:, b, :, source]
            self._v[:, b, :, target] = self._v[:, b, :, source]

    def _evict(self) -> None:
        """Free ring blocks whose chunk has no frame in the sink or among the last ``max_local`` frames."""
        chunk = self._ring_chunk
        F = self.chunk_frames
        drop = (chunk >= 0) & (chunk * F >= self.policy.sink_frames) \
            & ((chunk + 1) * F <= self._num_frames - self._keep_after)
        chunk[drop] = -1
