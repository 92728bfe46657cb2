"""Pure logic of the simulator: token counting, text, latency draws, faults, admission.

Nothing here touches sockets or clocks, so each piece is unit-testable and seeded.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections import deque
from dataclasses import dataclass

from factorybench.sim.config import SimConfig

# A word or a single punctuation mark counts as one token. Tokenizers give ~1.3 tokens per
# English word, so this underestimates real counts, but it is deterministic, fast, and the
# simulator's own output (one " word" per token) counts back to exactly completion_tokens.
_TOKEN_RE = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    """Prompt tokens of a text (see _TOKEN_RE)."""
    return len(_TOKEN_RE.findall(text))


_CONSONANTS = "bcdfghklmnprstvz"
_VOWELS = "aeiou"


class TextSource:
    """Deterministic pseudo-words, pre-encoded as b" word" so chunks need no JSON escaping.

    A request takes a run of consecutive words from a seeded cyclic stream, starting at a
    seeded offset: the same seed and request order give the same texts.
    """

    def __init__(self, seed: int, size: int = 4096):
        rng = random.Random(f"text-{seed}")
        words = []
        for _ in range(size):
            syllables = rng.randint(1, 3)
            w = "".join(rng.choice(_CONSONANTS) + rng.choice(_VOWELS) for _ in range(syllables))
            words.append(b" " + w.encode())
        self._words = words
        self._rng = random.Random(f"offset-{seed}")

    def take(self, n: int) -> list[bytes]:
        """The next request's n words."""
        size = len(self._words)
        start = self._rng.randrange(size)
        if start + n <= size:
            return self._words[start:start + n]
        return [self._words[(start + i) % size] for i in range(n)]


def chunk_sizes(n_tokens: int, per_chunk: int) -> list[int]:
    """Tokens per streamed chunk: the first token alone (as vLLM's stream_interval does),
    then groups of per_chunk, the last group possibly smaller."""
    if n_tokens <= 0:
        return []
    rest = n_tokens - 1
    sizes = [1] + [per_chunk] * (rest // per_chunk)
    if rest % per_chunk:
        sizes.append(rest % per_chunk)
    return sizes


class LatencyModel:
    """Seeded draws of TTFT and ITL (in seconds) following SimConfig's formulas."""

    def __init__(self, cfg: SimConfig):
        self.cfg = cfg
        self._rng = random.Random(f"latency-{cfg.seed}")
        self._itl_base = cfg.itl_ms / 1000.0
        self._slope = cfg.slowdown / cfg.max_num_seqs

    def _jitter(self, value: float, rel_std: float) -> float:
        if rel_std <= 0:
            return value
        return value * max(0.0, 1.0 + self._rng.gauss(0.0, rel_std))

    def ttft_s(self, prompt_tokens: int) -> float:
        return self._jitter(self.cfg.ttft_s(prompt_tokens), self.cfg.ttft_jitter)

    def itl_s(self, running: int, tokens: int = 1) -> float:
        """Time to produce `tokens` more tokens while `running` requests share the engine."""
        base = self._itl_base * (1.0 + self._slope * running)
        jitter = self.cfg.itl_jitter
        if jitter <= 0:
            return base * tokens
        return sum(self._jitter(base, jitter) for _ in range(tokens))


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """What goes wrong with one request. Chunk indices count from 0; None means no fault."""

    error: bool = False
    stall_at: int | None = None
    drop_at: int | None = None


NO_FAULT = FaultPlan()


class FaultDraw:
    """Seeded fault decisions, on their own RNG so enabling faults does not change the text."""

    def __init__(self, cfg: SimConfig):
        self.cfg = cfg
        self._rng = random.Random(f"faults-{cfg.seed}")
        self._any = cfg.error_rate > 0 or cfg.stall_rate > 0 or cfg.drop_rate > 0

    def _mid(self, n_chunks: int) -> int:
        # After the first chunk when there is more than one, so the fault is "mid-stream".
        return self._rng.randrange(1, n_chunks) if n_chunks > 1 else 0

    def draw(self, n_chunks: int) -> FaultPlan:
        if not self._any:
            return NO_FAULT
        rng, cfg = self._rng, self.cfg
        error = rng.random() < cfg.error_rate
        stall_at = self._mid(n_chunks) if rng.random() < cfg.stall_rate else None
        drop_at = self._mid(n_chunks) if rng.random() < cfg.drop_rate else None
        return FaultPlan(error, stall_at, drop_at)


class QueueFull(Exception):
    """The waiting queue is full: the server answers 429 (OpenAI) or 503 (Ollama)."""


class Scheduler:
    """Admission like vLLM's: at most max_num_seqs running and the KV reservations within
    capacity; others wait FIFO up to max_queue, beyond which requests are rejected.

    A request bigger than the whole KV capacity still runs when nothing else does, so it
    can never block the queue forever.
    """

    def __init__(self, max_num_seqs: int, max_queue: int, kv_capacity: int):
        self.max_num_seqs = max_num_seqs
        self.max_queue = max_queue
        self.kv_capacity = kv_capacity
        self.running = 0
        self.kv_used = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @property
    def kv_usage(self) -> float:
        return min(1.0, self.kv_used / self.kv_capacity)

    def _fits(self, tokens: int) -> bool:
        return self.running < self.max_num_seqs and (
            self.running == 0 or self.kv_used + tokens <= self.kv_capacity)

    def _admit(self, tokens: int) -> None:
        self.running += 1
        self.kv_used += tokens

    async def acquire(self, tokens: int) -> bool:
        """Take a running slot reserving `tokens`; returns True if the request had to wait.

        Raises QueueFull at once when it would have to wait and the queue is full.
        """
        if not self._waiters and self._fits(tokens):
            self._admit(tokens)
            return False
        if len(self._waiters) >= self.max_queue:
            raise QueueFull
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (tokens, fut)
        self._waiters.append(entry)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release(tokens)  # admitted just before the cancellation landed
            else:
                if entry in self._waiters:
                    self._waiters.remove(entry)
                self._wake()  # the head may have left: those behind it may fit now
            raise
        return True

    def release(self, tokens: int) -> None:
        """Free a slot and admit waiters, in order, while they fit."""
        self.running -= 1
        self.kv_used -= tokens
        self._wake()

    def _wake(self) -> None:
        waiters = self._waiters
        while waiters:
            tokens, fut = waiters[0]
            if fut.done():  # cancelled, its task has not run its cleanup yet
                waiters.popleft()
                continue
            if not self._fits(tokens):
                return
            waiters.popleft()
            self._admit(tokens)
            fut.set_result(None)
