"""Pure logic: token counting, text, latency draws, faults, admission."""

from __future__ import annotations

import asyncio

import pytest

from factorybench.sim.config import SimConfig
from factorybench.sim.model import (FaultDraw, LatencyModel, QueueFull, Scheduler, TextSource,
                                    chunk_sizes, count_tokens)


def test_count_tokens_words_and_punctuation():
    assert count_tokens("Hello, world!") == 4
    assert count_tokens("") == 0
    assert count_tokens("  a  b\nc ") == 3


def test_text_is_seeded_and_counts_back_exactly():
    a, b, c = TextSource(1), TextSource(1), TextSource(2)
    first = a.take(50)
    assert first == b.take(50)
    assert first != c.take(50)
    assert a.take(50) != first  # the next request gets other words
    assert count_tokens(b"".join(first).decode()) == 50
    assert len(TextSource(0, size=8).take(20)) == 20  # wraps around the stream


@pytest.mark.parametrize("n,k,expected", [
    (1, 1, [1]), (4, 1, [1, 1, 1, 1]), (8, 3, [1, 3, 3, 1]), (7, 3, [1, 3, 3]), (0, 2, []),
])
def test_chunk_sizes_first_token_alone(n, k, expected):
    assert chunk_sizes(n, k) == expected


def test_ttft_formula_without_jitter():
    cfg = SimConfig(ttft_ms=40, prefill_ms_per_token=0.5)
    model = LatencyModel(cfg)
    assert model.ttft_s(100) == pytest.approx(0.090)
    assert cfg.ttft_s(0) == pytest.approx(0.040)
    assert SimConfig(ttft_overhead_ms=12).ttft_ms == 12  # accepted alias


def test_jitter_is_seeded_reproducible_and_non_negative():
    cfg = SimConfig(itl_ms=10, itl_jitter=2.0, ttft_jitter=0.3, seed=7)
    a, b = LatencyModel(cfg), LatencyModel(cfg)
    draws_a = [a.itl_s(0) for _ in range(200)]
    assert draws_a == [b.itl_s(0) for _ in range(200)]
    assert min(draws_a) == 0.0  # clipped, and a large std does hit the clip
    assert len(set(draws_a)) > 50
    other = LatencyModel(cfg.model_copy(update={"seed": 8}))
    assert draws_a != [other.itl_s(0) for _ in range(200)]
    ttfts = [a.ttft_s(0) for _ in range(500)]
    assert 0.045 < sum(ttfts) / len(ttfts) < 0.055


def test_slowdown_scales_itl_with_running():
    model = LatencyModel(SimConfig(itl_ms=10, slowdown=1.0, max_num_seqs=4))
    assert model.itl_s(0) == pytest.approx(0.010)
    assert model.itl_s(2) == pytest.approx(0.015)
    assert model.itl_s(4, tokens=3) == pytest.approx(0.060)
    assert LatencyModel(SimConfig(itl_ms=10)).itl_s(200) == pytest.approx(0.010)


def test_e2e_truth():
    cfg = SimConfig(ttft_ms=50, itl_ms=10)
    assert cfg.e2e_s(0, 32) == pytest.approx(0.360)


def test_fault_draws_at_rate_one_and_zero():
    always = FaultDraw(SimConfig(error_rate=1, stall_rate=1, drop_rate=1))
    plan = always.draw(10)
    assert plan.error and 1 <= plan.stall_at < 10 and 1 <= plan.drop_at < 10
    assert always.draw(1).drop_at == 0
    never = FaultDraw(SimConfig())
    assert all(never.draw(10) == never.draw(3) for _ in range(10))
    assert never.draw(5).error is False and never.draw(5).drop_at is None


def test_fault_rate_roughly_respected_and_seeded():
    a, b = FaultDraw(SimConfig(error_rate=0.2, seed=3)), FaultDraw(SimConfig(error_rate=0.2, seed=3))
    errors = [a.draw(4).error for _ in range(2000)]
    assert errors == [b.draw(4).error for _ in range(2000)]
    assert 300 < sum(errors) < 500


async def test_scheduler_admits_queues_and_rejects():
    s = Scheduler(max_num_seqs=2, max_queue=1, kv_capacity=1000)
    assert await s.acquire(10) is False
    assert await s.acquire(10) is False
    waiter = asyncio.create_task(s.acquire(10))
    await asyncio.sleep(0)
    assert (s.running, s.waiting) == (2, 1)
    with pytest.raises(QueueFull):
        await s.acquire(10)
    s.release(10)
    assert await waiter is True
    assert (s.running, s.waiting, s.kv_used) == (2, 0, 20)


async def test_scheduler_kv_capacity_limits_admission_but_never_deadlocks():
    s = Scheduler(max_num_seqs=10, max_queue=10, kv_capacity=100)
    assert await s.acquire(500) is False  # bigger than everything, but alone: runs
    assert s.kv_usage == 1.0
    waiter = asyncio.create_task(s.acquire(60))
    await asyncio.sleep(0)
    assert s.waiting == 1
    s.release(500)
    await waiter
    assert s.kv_usage == pytest.approx(0.6)


async def test_scheduler_fifo_and_cancelled_waiter_leaves_queue():
    s = Scheduler(max_num_seqs=1, max_queue=5, kv_capacity=1000)
    await s.acquire(1)
    order: list[str] = []

    async def wait(name: str) -> None:
        await s.acquire(1)
        order.append(name)

    tasks = {n: asyncio.create_task(wait(n)) for n in "abc"}
    await asyncio.sleep(0)
    tasks["a"].cancel()
    await asyncio.sleep(0)
    assert s.waiting == 2
    s.release(1)
    await asyncio.sleep(0)
    s.release(1)
    await asyncio.sleep(0)
    assert order == ["b", "c"]
    assert s.running == 1
