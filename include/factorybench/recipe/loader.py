"""Read recipes and cluster profiles from YAML with errors a person can act on.

Every error names the file, the key path and the reason, and all problems in a
file are reported at once rather than the first one only.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from factorybench.errors import RecipeError
from factorybench.recipe.cluster import ClusterProfile, expand_tree
from factorybench.recipe.schema import Recipe, model_key_paths

# libyaml's loader when present: ten times faster, and recipes are parsed on every DAG parse.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as exc:
        raise RecipeError(str(path), [("", f"cannot read: {exc.strerror}")]) from None
    try:
        return yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise RecipeError(str(path), [(where, f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from None


def parse_recipe(data: Any, source: str) -> Recipe:
    if not isinstance(data, dict):
        raise RecipeError(source, [("", "a recipe must be a mapping of keys to values")])
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        raise RecipeError(source, model_key_paths(exc.errors())) from None


def load_recipe(path: str | Path) -> Recipe:
    path = Path(path)
    return parse_recipe(_read_yaml(path), str(path))


def recipe_hash(recipe: Recipe) -> str:
    """A stable hash of the effective recipe, so results can be grouped by exact configuration."""
    blob = json.dumps(recipe.model_dump(mode="json"), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def workload_hash(recipe: Recipe) -> str:
    """A hash of what the run measures with, leaving out what it measures: the same recipe name,
    cluster profile, model, resources and client settings, whatever the service's image, command,
    arguments, modules or environment. Nightly runs of one recipe compare on it, so an upgrade of
    the service under test stays comparable while a different load (more streams) does not."""
    data = recipe.model_dump(mode="json")
    service = data["service"]
    workload = {"name": data["name"], "cluster": data["cluster"]["profile"], "model": service["model"],
                "resources": service["resources"], "client": data["client"]}
    return hashlib.sha256(json.dumps(workload, sort_keys=True).encode()).hexdigest()[:16]


def recipe_files(directory: str | Path) -> list[Path]:
    d = Path(directory)
    return sorted(p for p in d.glob("*.y*ml") if p.suffix in (".yaml", ".yml"))


def apply_overrides(recipe: Recipe, overrides: dict[str, Any], source: str) -> Recipe:
    """Set dotted key paths (from trigger params) and validate the result as a whole."""
    data = copy.deepcopy(recipe.model_dump(mode="json", exclude_unset=False))
    for dotted, value in overrides.items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return parse_recipe(data, source)


def load_clusters(path: str | Path, env: dict[str, str] | None = None) -> dict[str, ClusterProfile]:
    path = Path(path)
    raw = _read_yaml(path)
    if not isinstance(raw, dict):
        raise RecipeError(str(path), [("", "must map profile names to cluster settings")])
    problems: list[tuple[str, str]] = []
    out: dict[str, ClusterProfile] = {}
    for name, body in raw.items():
        expanded, unset = expand_tree(body, env, str(name))
        if unset:
            problems += unset
            continue
        try:
            out[name] = ClusterProfile.model_validate(expanded)
        except ValidationError as exc:
            problems += [(f"{name}.{loc}" if loc else name, why) for loc, why in model_key_paths(exc.errors())]
    if problems:
        raise RecipeError(str(path), problems)
    return out


def cluster_for(recipe: Recipe, clusters: dict[str, ClusterProfile], source: str) -> ClusterProfile:
    try:
        profile = clusters[recipe.cluster.profile]
    except KeyError:
        raise RecipeError(source, [("cluster.profile", f"unknown profile {recipe.cluster.profile!r}; "
                                    f"known: {', '.join(sorted(clusters)) or 'none'}")]) from None
    if recipe.cluster.transport and recipe.cluster.transport != profile.transport:
        profile = profile.model_copy(update={"transport": recipe.cluster.transport})
    return profile
