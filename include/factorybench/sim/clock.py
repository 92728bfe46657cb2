"""Sub-millisecond sleeps on the event loop.

asyncio's timers wake through epoll with millisecond granularity (rounded up: ~0.5-1 ms
late) and uvloop's through libuv's millisecond clock (up to 1 ms early). The load
engine's accuracy benchmark compares measured TTFT with the configured one within 1 ms,
so on Linux all deadlines go through one timerfd (nanosecond resolution, ~0.1 ms late),
armed for the earliest pending deadline. Elsewhere the loop's own timers are used.

Deadlines are absolute `time.monotonic()` values (CLOCK_MONOTONIC, the clock timerfd
uses), so callers precompute start + t_i and sleeping never accumulates error.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import heapq
import itertools
import os
import time

_CLOCK_MONOTONIC = 1
_TFD_TIMER_ABSTIME = 1
# Deadlines this close to the one that woke us are served in the same wake-up.
_COALESCE_S = 20e-6


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _load_libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        libc.timerfd_create.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.timerfd_settime.argtypes = [ctypes.c_int, ctypes.c_int,
                                         ctypes.POINTER(_Itimerspec), ctypes.c_void_p]
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _load_libc()


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class PreciseTimer:
    """`await timer.sleep_until(deadline)` wakes within ~0.1 ms after `deadline`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, use_timerfd: bool = True):
        self._loop = loop
        self._heap: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._armed = float("inf")
        self._fd = -1
        if use_timerfd and _LIBC is not None:
            fd = _LIBC.timerfd_create(_CLOCK_MONOTONIC, os.O_NONBLOCK | os.O_CLOEXEC)
            if fd >= 0:
                self._fd = fd
                self._spec = _Itimerspec()
                loop.add_reader(fd, self._on_fire)

    @property
    def precise(self) -> bool:
        """True when deadlines go through the timerfd."""
        return self._fd >= 0

    async def sleep_until(self, deadline: float) -> None:
        if self._fd < 0:
            await self._loop_sleep_until(deadline)
            return
        if deadline <= time.monotonic():
            return
        fut = self._loop.create_future()
        heapq.heappush(self._heap, (deadline, next(self._seq), fut))
        if deadline < self._armed:
            self._arm(deadline)
        await fut

    async def _loop_sleep_until(self, deadline: float) -> None:
        # uvloop's timers may fire up to 1 ms early: sleep again until really due.
        while (delay := deadline - time.monotonic()) > 0:
            await asyncio.sleep(delay)

    def _arm(self, deadline: float) -> None:
        self._armed = deadline
        sec = int(deadline)
        spec = self._spec
        spec.it_value.tv_sec = sec
        spec.it_value.tv_nsec = int((deadline - sec) * 1e9)
        _LIBC.timerfd_settime(self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(spec), None)

    def _on_fire(self) -> None:
        try:
            os.read(self._fd, 8)
        except BlockingIOError:
            pass
        heap = self._heap
        horizon = time.monotonic() + _COALESCE_S
        while heap and heap[0][0] <= horizon:
            _wake(heapq.heappop(heap)[2])
        if heap:
            self._arm(heap[0][0])
        else:
            self._armed = float("inf")

    def close(self) -> None:
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1
        for _, _, fut in self._heap:
            fut.cancel()
        self._heap.clear()
