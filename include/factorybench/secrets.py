"""Secrets: a recipe names where a secret lives (`service.secrets`), never the secret itself.

The reference is resolved at submit time, by the Airflow layer, and the value goes straight into
the job's environment through the transport (REST: the submit body's `environment`; SSH:
sbatch's environment, fed through the SSH channel's stdin; local: the job process's
environment). It is never in the batch script, the plan (XCom), the archive or a log line; see
docs/SECURITY.md.

No Airflow here: connections and Variables are looked up through a `Lookup` the Airflow layer
passes in, and core code that obtains a credential itself (the JWT provider) hides it in Airflow's
logs through the maskers the Airflow layer registers with `add_masker`.
"""

from __future__ import annotations

import inspect
import os
import shlex
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping, Protocol

from factorybench.errors import FactorybenchError
from factorybench.recipe.schema import SecretRef

Masker = Callable[[str], "Awaitable[None] | None"]
_MASKERS: list[Masker] = []


class SecretError(FactorybenchError):
    """A secret reference could not be resolved; says which and why, never a value."""


class Lookup(Protocol):
    """Where connections and Variables come from (Airflow's BaseHook and Variable)."""

    def connection(self, conn_id: str) -> Any:
        """An object with `password`, `login` and `extra_dejson`; raises when there is none."""

    def variable(self, key: str) -> str:
        """The Variable's value; raises when there is none."""


def add_masker(masker: Masker) -> None:
    """Register a function that hides a value in logs (Airflow's mask_secret). Idempotent."""
    if masker not in _MASKERS:
        _MASKERS.append(masker)


async def amask(value: str) -> None:
    """Tell every registered masker about a value (the JWT provider does, in any process)."""
    for masker in _MASKERS:
        result = masker(value)
        if inspect.isawaitable(result):
            await result


def _connection_field(conn: Any, field: str) -> Any:
    if field in ("password", "login"):
        return getattr(conn, field)
    key = field.removeprefix("extra.")
    extra = conn.extra_dejson or {}
    if key not in extra:
        raise SecretError(f"its extra has no key {key!r}")
    return extra[key]


def _lookup_value(ref: SecretRef, lookup: Lookup | None, env: Mapping[str, str]) -> Any:
    if ref.file is not None:
        return Path(ref.file).read_text().rstrip("\r\n")  # files usually end with a newline
    if ref.env is not None:
        if ref.env not in env:
            raise SecretError("not set in the Airflow worker's environment")
        return env[ref.env]
    if lookup is None:
        raise SecretError("connections and Variables can only be resolved by Airflow")
    if ref.connection is not None:
        return _connection_field(lookup.connection(ref.connection), ref.field or "password")
    return lookup.variable(ref.variable)  # type: ignore[arg-type]


def resolve_one(ref: SecretRef, lookup: Lookup | None, env: Mapping[str, str] | None = None) -> str:
    """The value a reference points at. Raises SecretError saying which reference failed and why."""
    try:
        value = _lookup_value(ref, lookup, os.environ if env is None else env)
    except SecretError as exc:
        raise SecretError(f"{ref.describe()}: {exc}") from None
    except OSError as exc:
        raise SecretError(f"{ref.describe()}: cannot read: {exc.strerror}") from None
    except Exception as exc:  # Airflow's own not-found errors; their text names the id, not a value
        raise SecretError(f"{ref.describe()}: {type(exc).__name__}: {exc}") from None
    value = "" if value is None else str(value)
    if not value:
        raise SecretError(f"{ref.describe()}: resolved to an empty value")
    return value


def resolve(refs: Mapping[str, SecretRef], lookup: Lookup | None,
            env: Mapping[str, str] | None = None) -> dict[str, str]:
    """{env name: value} for every reference; all failures are reported at once."""
    values: dict[str, str] = {}
    problems: list[str] = []
    for name, ref in refs.items():
        try:
            values[name] = resolve_one(ref, lookup, env)
        except SecretError as exc:
            problems.append(f"service.secrets.{name}: {exc}")
    if problems:
        raise SecretError("cannot resolve the service's secrets:\n" + "\n".join(problems))
    return values


def export_lines(values: Mapping[str, str]) -> str:
    """`export NAME='value'` lines for a shell to read from stdin (the SSH transport): the values
    travel inside the SSH channel, never on a command line that `ps` shows."""
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in values.items())


def redact(text: str, values: Mapping[str, str] | None) -> str:
    """`text` with every secret value replaced by ***: for errors that echo what they were sent."""
    for value in (values or {}).values():
        if value:
            text = text.replace(value, "***")
    return text
