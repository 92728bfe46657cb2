"""Command runners: where a transport's shell commands execute.

`LocalRunner` runs them on this machine (Airflow on the login node, or a chroot
cluster in tests). The SSH runner lives in the Airflow layer because it goes
through the SSH provider's hook.
"""

from __future__ import annotations

import asyncio
import shlex

from factorybench.errors import TransientSchedulerError


class LocalRunner:
    """Runs a command line with bash here, optionally under a prefix such as `chroot DIR`."""

    def __init__(self, prefix: str | list[str] | None = None):
        if isinstance(prefix, str):
            prefix = shlex.split(prefix)
        self.prefix = list(prefix or [])

    async def run(self, command: str, timeout: float | None = 60) -> tuple[int, str, str]:
        return await self.run_with_input(command, None, timeout)

    async def run_with_input(self, command: str, stdin: str | None,
                             timeout: float | None = 60) -> tuple[int, str, str]:
        """`run`, with `stdin` fed to the command (None: /dev/null)."""
        argv = [*self.prefix, "bash", "-c", command]
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(None if stdin is None else stdin.encode()), timeout)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise TransientSchedulerError(f"command timed out after {timeout}s: {command[:80]}") from None
        return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")
