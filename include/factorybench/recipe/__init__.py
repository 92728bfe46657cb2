"""Recipes (what to benchmark) and cluster profiles (where)."""

from factorybench.recipe.cluster import ClusterProfile, PendingPolicy
from factorybench.recipe.loader import (apply_overrides, cluster_for, load_clusters, load_recipe,
                                        recipe_files, recipe_hash, workload_hash)
from factorybench.recipe.schema import Recipe

__all__ = ["ClusterProfile", "PendingPolicy", "Recipe", "apply_overrides", "cluster_for",
           "load_clusters", "load_recipe", "recipe_files", "recipe_hash", "workload_hash"]
