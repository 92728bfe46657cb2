"""Run parameters: the recipe values a trigger (UI form, REST `conf`, `factorybench run --set`)
may override, with JSON schemas derived from the recipe's own models so the two never drift.

No Airflow here: the DAG factory turns these into Airflow Params, and the plan step turns the
values a run was given back into recipe overrides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, get_args

from factorybench.load.config import ProfileKind
from factorybench.recipe.schema import SLURM_TIME, SLURM_WORD, Client, ClusterRef, Recipe, Resources, Service

# Extra keys a run's conf may carry besides the params: provenance, never recipe values.
PROVENANCE_KEYS = ("ci_ref", "triggered_via")


def _enum(annotation: Any, nullable: bool = False) -> list[Any]:
    values = [v for v in get_args(annotation) if isinstance(v, str)]
    for arg in get_args(annotation):  # Optional[Literal[...]]
        values += [v for v in get_args(arg) if isinstance(v, str)]
    return ([None] if nullable else []) + sorted(set(values), key=values.index)


@dataclass(frozen=True)
class ParamSpec:
    name: str
    path: str  # dotted key path in the recipe
    schema: dict[str, Any]
    description: str


def _field_doc(model, name: str) -> str:
    return model.model_fields[name].description or ""


SPECS: tuple[ParamSpec, ...] = (
    ParamSpec("transport", "cluster.transport",
              {"type": ["null", "string"], "enum": _enum(ClusterRef.model_fields["transport"].annotation, True)},
              _field_doc(ClusterRef, "transport")),
    ParamSpec("partition", "service.resources.partition",
              {"type": ["null", "string"], "pattern": SLURM_WORD, "maxLength": 128}, "SLURM partition"),
    ParamSpec("time_limit", "service.resources.time", {"type": "string", "pattern": SLURM_TIME},
              _field_doc(Resources, "time")),
    ParamSpec("port", "service.port",
              {"type": ["integer", "string"], "pattern": "^auto$(?!\\n)", "minimum": 1, "maximum": 65535},
              "service port, or auto"),
    ParamSpec("image", "service.image", {"type": ["null", "string"], "maxLength": 4096},
              _field_doc(Service, "image") + "; e.g. the image a CI pipeline just built"),
    ParamSpec("service_args", "service.args", {"type": "array", "items": {"type": "string", "maxLength": 4096}},
              _field_doc(Service, "args")),
    ParamSpec("client_where", "client.where", {"type": "string", "enum": _enum(Client.model_fields["where"].annotation)},
              "run the load client here (local) or as a SLURM job"),
    ParamSpec("client_tasks", "client.tasks", {"type": "integer", "minimum": 1, "maximum": 256},
              _field_doc(Client, "tasks")),
    ParamSpec("profile", "client.profile.kind", {"type": "string", "enum": _enum(ProfileKind)}, "load profile"),
    ParamSpec("streams", "client.profile.streams", {"type": "integer", "minimum": 1, "maximum": 100000},
              "concurrent streams"),
    ParamSpec("rate", "client.profile.rate", {"type": ["null", "number"], "exclusiveMinimum": 0},
              "requests/s for open-loop profiles"),
    ParamSpec("max_requests", "client.profile.max_requests", {"type": ["null", "integer"], "minimum": 1},
              "requests per step"),
    ParamSpec("duration_s", "client.profile.duration_s", {"type": ["null", "number"], "exclusiveMinimum": 0},
              "seconds per step"),
)


def defaults(recipe_data: dict[str, Any]) -> dict[str, Any]:
    """Each param's value in the recipe (a `model_dump(mode="json")`)."""
    out = {}
    for spec in SPECS:
        node: Any = recipe_data
        for key in spec.path.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        out[spec.name] = node
    return out


def overrides(params: dict[str, Any], recipe: Recipe) -> dict[str, Any]:
    """The params whose value differs from the recipe's, as {dotted path: value}."""
    base = defaults(recipe.model_dump(mode="json"))
    return {spec.path: params[spec.name] for spec in SPECS
            if spec.name in params and params[spec.name] != base[spec.name]}


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """`k=v` words (CLI `--conf`/`--set`) → values, JSON-decoded where they parse as JSON."""
    import json

    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ValueError(f"{item!r}: expected key=value")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out
