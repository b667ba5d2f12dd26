"""DySink (arXiv 2605.21028): a memory bank of past chunks retrieved as dynamic sinks, plus the sink anomaly gate.

The policy holds the parameters and the retrieval rule (``DySinkPolicy.select``: top-k outside the sink and the
local window; the window grows by a chunk per missing entry). ``MemoryBank`` holds the per-video embeddings and
the dedup and eviction rules. ``DySinkMemory`` is what the KV cache talks to (lolbench.cache.memory.ChunkMemory):
it ranks the bank, places the retrieved chunks, runs the anomaly test ``gate_consensus`` per layer and attention
call, and keeps the gate statistics; the entries' keys and values live in the cache's storage, in the block of
the same slot number.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lolbench.cache.embed import EMBEDDERS, build_embedder
from lolbench.cache.policies import Selection, SinkPolicy, check_size
from lolbench.probes import FrameKind


class DySinkPolicy(SinkPolicy):
    """Static sink (default none) + ``top_k`` retrieved chunks + a local window of ``window_frames``.

    ``dedup_threshold``: a chunk enters the bank only if its largest cosine to the stored entries is at most
    this. ``gate``/``gate_tau``: drop a retrieved entry in a layer and call when more than ``gate_tau`` of the
    heads prefer it to the local window. ``embedder`` names the chunk embedder (lolbench.cache.embed).
    """

    name = "dysink"

    def __init__(
        self,
        sink_frames: int = 0,
        window_frames: int = 9,
        top_k: int = 2,
        bank_size: int = 64,
        dedup_threshold: float = 0.95,
        gate: bool = True,
        gate_tau: float = 0.8,
        embedder: str = "pixel",
    ):
        super().__init__(sink_frames, window_frames)
        check_size("top_k", top_k, minimum=1)
        check_size("bank_size", bank_size, minimum=1)
        if top_k > bank_size:
            raise ValueError(f"sink.top_k={top_k} exceeds sink.bank_size={bank_size}")
        if isinstance(dedup_threshold, bool) or not isinstance(dedup_threshold, (int, float)) \
                or not -1.0 <= dedup_threshold <= 1.0:
            raise ValueError(f"sink.dedup_threshold must be a cosine in [-1, 1], got {dedup_threshold!r}")
        if not isinstance(gate, bool):
            raise ValueError(f"sink.gate must be true or false, got {gate!r}")
        if isinstance(gate_tau, bool) or not isinstance(gate_tau, (int, float)) or not 0.0 <= gate_tau <= 1.0:
            raise ValueError(f"sink.gate_tau must be a fraction of heads in [0, 1], got {gate_tau!r}")
        if embedder not in EMBEDDERS:
            raise ValueError(f"sink.embedder={embedder!r} is not one of {sorted(EMBEDDERS)}")
        self.top_k = top_k
        self.bank_size = bank_size
        self.dedup_threshold = float(dedup_threshold)
        self.gate = gate
        self.gate_tau = float(gate_tau)
        self.embedder = embedder

    def check(self, chunk_frames: int) -> None:
        super().check(chunk_frames)
        if self.window_frames % chunk_frames:
            raise ValueError(
                f"sink.window_frames={self.window_frames} must be a whole number of chunks of {chunk_frames} "
                "frames for dysink: its retrieval query is the embeddings of the chunks in the window"
            )

    def max_local_frames(self, chunk_frames: int) -> int:
        """The window after growing by a chunk for every retrieved entry that is missing."""
        return self.window_frames + self.top_k * chunk_frames

    def select(self, num_frames: int, chunk_frames: int, ranked: Sequence[int] = ()) -> Selection:
        """Context of the chunk that starts at frame ``num_frames``.

        ``ranked``: candidate chunk indices, best first (the memory bank). Up to ``top_k`` are retrieved from those
        lying entirely between the sink and the local window. With ``m`` entries missing the window grows by ``m``
        chunks; since growing can swallow a candidate, the smallest ``m`` for which enough candidates remain
        outside the grown window is used, which keeps retrieved and local frames disjoint.
        """
        sink = range(min(self.sink_frames, num_frames))
        missing = 0
        while True:  # ends by missing == top_k at the latest, where no candidate is needed
            local_start = max(len(sink), num_frames - self.window_frames - missing * chunk_frames)
            eligible = [c for c in ranked if c * chunk_frames >= self.sink_frames
                        and (c + 1) * chunk_frames <= local_start]
            if len(eligible) >= self.top_k - missing:
                retrieved = tuple(sorted(eligible[: self.top_k - missing]))
                return Selection(sink, range(local_start, num_frames), retrieved)
            missing += 1

    def memory(self, batch: int, chunk_frames: int, tokens_per_frame: int, channels: int,
               device: torch.device) -> DySinkMemory:
        return DySinkMemory(self, batch, chunk_frames, tokens_per_frame, channels, device)


class MemoryBank:
    """Embeddings of stored past chunks, one bank per video of the batch, with a fixed number of slots.

    Bookkeeping of a few dozen small vectors, so plain numpy on the CPU (tiny torch ops pay thread start-up).
    Products use ``np.einsum`` rather than ``@``: ``@`` goes to the BLAS, whose worker threads then spin beside
    torch's and slowed generation by a third once the bank was full (measured with the shipped checkpoint).

    When the bank is full, the entry evicted is the most redundant one: the largest cosine to any other entry
    (the newcomer included), the oldest on ties. Retrieval wants a bank that covers as many distinct scenes as
    possible; an entry with a near twin costs least coverage when removed, and the oldest-on-ties rule keeps
    DySink's preference for early content among equals.
    """

    def __init__(self, batch: int, size: int, dim: int, query_chunks: int, dedup_threshold: float):
        self.dedup_threshold = dedup_threshold
        self.embedding = np.zeros((batch, size, dim), dtype=np.float32)  # [B, size, E]
        self.chunk = np.full((batch, size), -1, dtype=np.int64)  # chunk index per slot, -1 = free
        self.recent = np.zeros((batch, query_chunks, dim), dtype=np.float32)  # ring of the last chunks' embeddings
        # cosine between stored entries, kept up to date on every store so that eviction needs no [size, size]
        # product per chunk; rows of free slots are stale until the slot is filled (eviction only runs when full)
        self.similarity = np.full((batch, size, size), -np.inf, dtype=np.float32)  # [B, size, size]
        self.seen = 0  # chunks observed since reset

    def reset(self) -> None:
        self.chunk.fill(-1)
        self.seen = 0

    def occupancy(self) -> float:
        """Mean number of stored entries per video."""
        return float((self.chunk >= 0).sum(axis=1).mean())

    def ranked(self, b: int) -> list[tuple[int, float]]:
        """(chunk index, score) of video ``b``'s entries, best first (older first on ties); the score is the
        mean cosine to the embeddings of the most recent chunks (DySink's retrieval query)."""
        slots = np.flatnonzero(self.chunk[b] >= 0)
        if slots.size == 0 or self.seen == 0:
            return []
        query = self.recent[b, : min(self.seen, self.recent.shape[1])].mean(axis=0)  # [E]
        scores = np.einsum("ne,e->n", self.embedding[b, slots], query)  # [n]
        chunks = self.chunk[b, slots]
        order = np.lexsort((chunks, -scores))
        return [(int(chunks[i]), float(scores[i])) for i in order]

    def slot_of(self, b: int, chunk: int) -> int:
        """Slot holding ``chunk`` in video ``b``'s bank."""
        return int(np.flatnonzero(self.chunk[b] == chunk)[0])

    def add(self, embedding: np.ndarray, chunk: int) -> np.ndarray:
        """Observe chunk ``chunk`` (embeddings [B, E], unit norm); store it where it is not a near-duplicate.

        Returns the slot it was stored in per video, -1 where it was skipped.
        """
        self.recent[:, self.seen % self.recent.shape[1]] = embedding
        self.seen += 1
        slots = np.full(len(self.chunk), -1, dtype=np.int64)
        for b in range(len(self.chunk)):
            occupied = self.chunk[b] >= 0
            cosine = np.einsum("se,e->s", self.embedding[b], embedding[b])  # [size]
            if occupied.any() and cosine[occupied].max() > self.dedup_threshold:
                continue
            free = np.flatnonzero(~occupied)
            slot = free[0] if free.size else self._most_redundant(b, cosine)
            self.embedding[b, slot] = embedding[b]
            self.chunk[b, slot] = chunk
            self.similarity[b, slot, :] = cosine
            self.similarity[b, :, slot] = cosine
            self.similarity[b, slot, slot] = -np.inf
            slots[b] = slot
        return slots

    def _most_redundant(self, b: int, cosine_to_new: np.ndarray) -> int:
        redundancy = np.maximum(self.similarity[b].max(axis=1), cosine_to_new)  # [size]
        candidates = np.flatnonzero(redundancy == redundancy.max())
        return int(candidates[np.argmin(self.chunk[b, candidates])])

    def buffers(self) -> dict[str, np.ndarray]:
        return {"bank_embedding": self.embedding, "bank_chunk": self.chunk, "bank_recent": self.recent,
                "bank_similarity": self.similarity}

    def state_dict(self) -> dict[str, Any]:
        return {**{name: array.copy() for name, array in self.buffers().items()}, "bank_seen": self.seen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, array in self.buffers().items():
            saved = np.asarray(state[name])
            if saved.shape != array.shape:
                raise ValueError(f"memory bank state {name} has shape {saved.shape}, this bank {array.shape}")
            array[...] = saved
        self.seen = int(state["bank_seen"])


class DySinkMemory:
    """DySink behind the cache's ``ChunkMemory`` interface: bank, retrieval, anomaly gate and their statistics."""

    def __init__(self, policy: DySinkPolicy, batch: int, chunk_frames: int, tokens_per_frame: int, channels: int,
                 device: torch.device):
        self.policy = policy
        self.batch, self.chunk_frames, self.tokens_per_frame = batch, chunk_frames, tokens_per_frame
        self.num_slots = policy.bank_size
        self.device = device
        self.embedder = build_embedder(policy.embedder, channels)
        self.bank = MemoryBank(batch, policy.bank_size, self.embedder.dim, policy.window_frames // chunk_frames,
                               policy.dedup_threshold)
        self._gate_sum = torch.zeros(3, device=device)  # entries tested, entries gated, sum of consensus
        self._ranked: list[list[tuple[int, float]]] = []
        self._kind = np.zeros((batch, 0), dtype=np.int8)
        self._entries: Tensor | None = None  # [B, k, S+F] weight 1/F on the frames of retrieved entry j
        self._local: Tensor | None = None  # [B, S+F] weight 1/n on the n local-window frames
        self._valid: Tensor | None = None  # [B, k] entry j exists for video b
        self._score = float("nan")  # mean retrieval score of the retrieved entries

    def reset(self) -> None:
        self.bank.reset()

    def select(self, num_frames: int) -> list[Selection]:
        self._ranked = [self.bank.ranked(b) for b in range(self.batch)]
        return [self.policy.select(num_frames, self.chunk_frames, [c for c, _ in r]) for r in self._ranked]

    def slot_of(self, b: int, chunk: int) -> int:
        return self.bank.slot_of(b, chunk)

    def begin(self, selections: list[Selection], kind: np.ndarray) -> None:
        """Per-chunk weights that turn per-frame key means into entry and local-window means for the gate."""
        self._gate_sum.zero_()
        self._kind = kind
        self._entries = self._local = self._valid = None
        self._score = float("nan")
        if not any(sel.retrieved for sel in selections):
            return
        F = self.chunk_frames
        entries = np.zeros((self.batch, self.policy.top_k, kind.shape[1]), dtype=np.float32)
        scores = []
        for b, sel in enumerate(selections):
            score = dict(self._ranked[b])
            for j, c in enumerate(sel.retrieved):
                start = len(sel.sink) + j * F  # retrieved frames follow the sink, entry by entry
                entries[b, j, start : start + F] = 1.0 / F
                scores.append(score[c])
        local = (kind == FrameKind.LOCAL).astype(np.float32)
        local /= local.sum(axis=1, keepdims=True)
        self._entries = torch.from_numpy(entries).to(self.device)
        self._local = torch.from_numpy(local).to(self.device)
        self._valid = self._entries.sum(dim=2) > 0
        self._score = float(np.mean(scores))

    def mask(self, q: Tensor, keys: Tensor) -> Tensor | None:
        """DySink's anomaly gate for one layer and call: tests every retrieved entry, records the statistics,
        and returns the mask that drops gated entries (None when nothing is retrieved or the gate is off)."""
        if self._entries is None:
            return None
        # in float32 whatever the model's dtype (a no-op for float32 models)
        frame_keys = keys.float().unflatten(2, (-1, self.tokens_per_frame)).mean(dim=3)  # [B, H, S+F, D]
        entry_keys = torch.einsum("bes,bhsd->behd", self._entries, frame_keys)  # [B, k, H, D]
        local_key = torch.einsum("bs,bhsd->bhd", self._local, frame_keys)  # [B, H, D]
        consensus = gate_consensus(q.float().mean(dim=2), entry_keys, local_key)  # [B, k]
        if self.policy.gate:
            gated = self._valid & (consensus > self.policy.gate_tau)
        else:
            gated = torch.zeros_like(self._valid)
        valid = self._valid.float()
        self._gate_sum += torch.stack([valid.sum(), gated.float().sum(), (consensus * valid).sum()])
        if not self.policy.gate:
            return None
        blocked = torch.einsum("be,bes->bs", gated.float(), self._entries) > 0  # [B, S+F]
        return (~blocked).repeat_interleave(self.tokens_per_frame, dim=1)[:, None, None, :]

    def store(self, frames: Tensor, embedding: Tensor | None, chunk: int) -> np.ndarray:
        """Embed the finished chunk (or take its given ``embedding``, [B, dim] unit vectors) into the bank."""
        if embedding is None:
            embedding = self.embedder(frames)
        elif tuple(embedding.shape) != (self.batch, self.embedder.dim):
            raise ValueError(f"embedding must be [B={self.batch}, dim={self.embedder.dim}] "
                             f"(sink.embedder={self.embedder.name}), got {tuple(embedding.shape)}")
        return self.bank.add(embedding.detach().float().cpu().numpy(), chunk)

    def stats(self) -> dict[str, float]:
        tested, gated, consensus = self._gate_sum.tolist()
        retrieved = 0.0 if self._valid is None else self._valid.sum(dim=1).float().mean().item()
        return {
            "retrieved": retrieved,
            "local_frames": float((self._kind == FrameKind.LOCAL).sum(axis=1).mean()),
            "bank_entries": self.bank.occupancy(),
            f"retrieval_score[{self.embedder.name}]": self._score,
            "gate_fraction": gated / tested if tested else float("nan"),
            "gate_consensus_mean": consensus / tested if tested else float("nan"),
        }

    def buffers(self) -> dict[str, Tensor | np.ndarray]:
        return {"gate_sum": self._gate_sum, **self.bank.buffers()}

    def state_dict(self) -> dict[str, Any]:
        return {"embedder": self.embedder.name, **self.bank.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["embedder"] != self.embedder.name:
            raise ValueError(f"DySink state was saved with sink.embedder={state['embedder']}, "
                             f"this run uses {self.embedder.name}")
        self.bank.load_state_dict(state)


def gate_consensus(q_mean: Tensor, entry_keys: Tensor, local_key: Tensor) -> Tensor:
    """DySink's anomaly consensus ρ_e: the fraction of heads whose mean query scores entry e above the local
    window, r_h(e) = q̄_h·k̄_e > ℓ_h = q̄_h·k̄_local. A retrieved sink that wins in nearly every head at once is
    the inter-head homogenization behind sink-collapse, so the gate drops entries with ρ_e > τ.

    q_mean: [B, H, D]; entry_keys: [B, E, H, D] mean key of each entry; local_key: [B, H, D]. Returns [B, E].
    """
    entry_score = torch.einsum("bhd,behd->beh", q_mean, entry_keys)  # [B, E, H]
    local_score = (q_mean * local_key).sum(dim=-1)  # [B, H]
    return (entry_score > local_score[:, None, :]).float().mean(dim=-1)
