"""Who may see and do what: Airflow's own authentication and authorization, on every route.

A FastAPI app mounted by a plugin has no auth of its own. Every route of this app depends on
Airflow's `get_user` (the Bearer token, or the UI's `_token` cookie; 401 without either) and asks
Airflow's auth manager about the DAG the page shows, with the same users and roles as the rest of
Airflow: reading needs GET on the DAG's runs, cancelling a run or accepting a change needs PUT
(edit). The cluster view needs the Cluster Activity view. A form posted with the cookie must
come from this origin, so another site cannot make a logged-in browser act.
"""

from __future__ import annotations

from typing import Callable
from urllib.parse import urlsplit

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import AccessView, DagAccessEntity, DagDetails
from airflow.api_fastapi.core_api.security import GetUserDep, get_user, requires_access_dag, requires_access_view
from fastapi import Depends, HTTPException, Request, status

from factorybench.recipe.schema import dag_id_for

__all__ = ["GetUserDep", "authenticated", "can", "cluster_view", "edit_recipe", "edit_run", "read_recipe",
           "read_run", "same_origin"]

authenticated = Depends(get_user)
read_run = Depends(requires_access_dag("GET", DagAccessEntity.RUN))  # the DAG is the path's {dag_id}
edit_run = Depends(requires_access_dag("PUT", DagAccessEntity.RUN))
cluster_view = Depends(requires_access_view(AccessView.CLUSTER_ACTIVITY))


def can(user: BaseUser, method: str, dag_id: str) -> bool:
    """Whether Airflow lets the user read (GET) or edit (PUT) this DAG's runs."""
    from airflow.models.dag import DagModel

    details = DagDetails(id=dag_id, team_name=DagModel.get_team_name(dag_id))
    return get_auth_manager().is_authorized_dag(method=method, access_entity=DagAccessEntity.RUN, details=details,
                                                user=user)


def _recipe_access(method: str) -> Callable[[Request, BaseUser], None]:
    def check(request: Request, user: GetUserDep) -> None:
        if not can(user, method, dag_id_for(request.path_params["recipe"])):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "Forbidden")
    return check


read_recipe = Depends(_recipe_access("GET"))  # the DAG of the path's {recipe}
edit_recipe = Depends(_recipe_access("PUT"))


def _same_origin(request: Request) -> None:
    if request.headers.get("authorization", "").lower().startswith("bearer "):
        return  # an explicit token: no browser sends one on another site's behalf
    source = request.headers.get("origin") or request.headers.get("referer") or ""
    if urlsplit(source).netloc != request.url.netloc:  # the host (a TLS proxy may change the scheme)
        raise HTTPException(status.HTTP_403_FORBIDDEN, "a form must be posted from this site's own pages")


same_origin = Depends(_same_origin)
