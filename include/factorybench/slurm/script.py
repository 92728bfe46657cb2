"""Recipe → JobSpec: render the batch script from a Jinja2 template.

Recipe values never reach the shell unquoted: words are `shlex.quote`d, names are
validated by the schema and by `JobSpec`, and the only expansions left to the shell
are `${FB_PORT}` and `${FB_HOST}`, which the recipe's `{port}` and `{host}` placeholders stand for.
"""

from __future__ import annotations

import re
import shlex
from functools import lru_cache

import jinja2

from factorybench.monitoring import exporters
from factorybench.recipe.cluster import ClusterProfile
from factorybench.recipe.schema import Recipe, Resources
from factorybench.slurm.spec import JobSpec

AUTO_PORT_BASE = 20000
AUTO_PORT_SPAN = 10000


@lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    env = jinja2.Environment(loader=jinja2.PackageLoader("factorybench.slurm", "templates"),
                             undefined=jinja2.StrictUndefined, autoescape=False,
                             keep_trailing_newline=True)
    return env.get_template("batch.sh.j2")


def quote_word(word: str, model: str | None) -> str:
    """Shell-quote one argv word, letting `{port}` expand to ${FB_PORT}, `{host}` to ${FB_HOST} (the
    address of the node the word runs on) and `{model}` to the model. One pass: a model name that
    itself contains `{port}` stays literal."""
    out = []
    for piece in re.split(r"(\{port\}|\{host\}|\{model\})", word):
        if piece == "{port}":
            out.append('"${FB_PORT}"')
        elif piece == "{host}":
            out.append('"${FB_HOST}"')
        elif piece == "{model}" and model is not None:
            out.append(shlex.quote(model))
        elif piece:
            out.append(shlex.quote(piece))
    return "".join(out) or "''"


def service_port(recipe: Recipe, job_id: str) -> int:
    """The port the service listens on; 'auto' is derived from the job id on both sides."""
    port = recipe.service.port
    if port == "auto":
        return AUTO_PORT_BASE + int(job_id) % AUTO_PORT_SPAN
    return int(port)


def sbatch_lines(name: str, res: Resources, workdir: str, stdout: str, stderr: str) -> list[str]:
    """The #SBATCH header as a plain list, so tests can compare it line by line."""
    lines = [f"--job-name={name}"]
    for flag, value in (("partition", res.partition), ("account", res.account), ("qos", res.qos)):
        if value:
            lines.append(f"--{flag}={value}")
    lines += [f"--nodes={res.nodes}", f"--ntasks={res.ntasks}"]
    if res.cpus:
        lines.append(f"--cpus-per-task={res.cpus}")
    if res.gpus:
        lines.append(f"--gres=gpu:{res.gpus}")
    if res.mem:
        lines.append(f"--mem={res.mem}")
    lines += [f"--time={res.time}", f"--chdir={workdir}", f"--output={stdout}", f"--error={stderr}"]
    return lines


def launch_words(recipe: Recipe) -> list[str]:
    svc = recipe.service
    words = [quote_word(w, svc.model) for w in [*svc.command, *svc.args]]
    if svc.image:
        nv = ["--nv"] if svc.resources.gpus else []
        prefix = ["apptainer", "exec", *nv, *svc.apptainer_args, svc.image]
        words = [quote_word(w, svc.model) for w in prefix] + words
    return words


def job_name(recipe: Recipe, run_tag: str, role: str = "svc") -> str:
    return f"fb-{recipe.name}-{role}-{run_tag}"[:120]


def build_job_spec(recipe: Recipe, cluster: ClusterProfile, run_tag: str, recipe_hash: str) -> JobSpec:
    res = recipe.service.resources
    name = job_name(recipe, run_tag)
    stdout, stderr = "%x-%j.out", "%x-%j.err"
    env = {**cluster.env, **recipe.service.env}
    replicas = res.nodes if res.nodes > 1 and recipe.service.serve_on == "every-node" else 0
    port_expr = (f"$(( {AUTO_PORT_BASE} + SLURM_JOB_ID % {AUTO_PORT_SPAN} ))"
                 if recipe.service.port == "auto" else str(int(recipe.service.port)))
    script = _template().render(
        shebang=cluster.shebang,
        sbatch_lines=sbatch_lines(name, res, cluster.workdir, stdout, stderr),
        recipe_name=recipe.name, recipe_hash=recipe_hash, run_tag=run_tag,
        modules=list(recipe.service.modules),
        env=[(k, shlex.quote(v)) for k, v in env.items()],
        port_expr=port_expr,
        launch=" ".join(launch_words(recipe)),
        replicas=replicas,
        host=bool(replicas) or any("{host}" in w for w in [*recipe.service.command, *recipe.service.args]),
        monitoring=exporters.block(recipe, cluster, run_tag),  # exporters beside the service, or None
    )
    return JobSpec(
        name=name, script=script, workdir=cluster.workdir, time_limit_min=res.time_minutes,
        partition=res.partition, account=res.account, qos=res.qos, nodes=res.nodes,
        ntasks=res.ntasks, cpus_per_task=res.cpus, gres=f"gpu:{res.gpus}" if res.gpus else None,
        mem=res.mem, environment=dict(cluster.env), stdout=stdout, stderr=stderr)
