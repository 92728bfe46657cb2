"""Exporters next to the service: the batch-script lines that start them and register them.

When a recipe lists `monitoring.exporters` (node, dcgm), the service's job starts each one on its
node (the profile's command, inside its Apptainer image if it names one) and writes one file_sd
target file, `<file_sd_dir>/fb-<job id>.json`, that Prometheus picks up: every exporter, plus the
service's own /metrics when its kind has Prometheus names, labelled with the SLURM job id, the
recipe, the node and the run. A trap removes the file and stops the exporters on every way the job
ends but SIGKILL (scancel sends SIGTERM first; SLURM's KillWait leaves time for the trap).

Every recipe and profile value is shell-quoted, and reaches the target file as a printf argument,
never as part of its format.
"""

from __future__ import annotations

import json
import shlex

from factorybench.monitoring.names import for_kind

# 'auto' ports, derived from the job id like the service's own (20000-29999), in other ranges.
AUTO_PORTS = {"node": (10000, 10000), "dcgm": (30000, 2000)}


def _argv(words: list[str], port_var: str) -> str:
    """Quote argv words, letting {port} and {node} expand to the shell variables."""
    out = []
    for word in words:
        pieces = []
        for i, part in enumerate(word.split("{port}")):
            if i:
                pieces.append(f'"${{{port_var}}}"')
            pieces.append('"${FB_NODE}"'.join(shlex.quote(p) if p else "" for p in part.split("{node}")))
        out.append("".join(pieces) or "''")
    return " ".join(out)


def block(recipe, cluster, run_tag: str) -> str | None:
    """The bash lines to insert before the service starts, or None (the script then execs the
    service as before). ValueError when the recipe asks for exporters the profile cannot register."""
    want = recipe.monitoring.exporters
    if not want:
        return None
    profile = cluster.monitoring
    if not profile.file_sd_dir:
        raise ValueError(f"monitoring.exporters {list(want)} needs the cluster profile's monitoring.file_sd_dir "
                         "(where Prometheus finds the job's targets)")
    sd_dir = shlex.quote(profile.file_sd_dir)
    lines = [
        "# Monitoring (docs/MONITORING.md): exporters beside the service, registered for Prometheus while",
        "# the job runs; the trap removes the targets and stops the exporters however the job ends.",
        "FB_NODE=${SLURMD_NODENAME:-$(hostname -s)}",
        f'FB_SD_FILE={sd_dir}/fb-"${{SLURM_JOB_ID:-$$}}".json',
        "FB_CHILDREN=()",
        'fb_monitoring_stop() { rm -f "$FB_SD_FILE" "$FB_SD_FILE.tmp"; '
        '[ ${#FB_CHILDREN[@]} -eq 0 ] || kill "${FB_CHILDREN[@]}" 2>/dev/null || true; }',
        "trap fb_monitoring_stop EXIT",
        "trap 'fb_monitoring_stop; exit 143' TERM INT",
    ]
    targets: list[tuple[str, str, dict[str, str]]] = []  # (exporter, port variable, extra labels)
    for kind in want:
        exporter = profile.node_exporter if kind == "node" else profile.dcgm_exporter
        var = f"FB_{kind.upper()}_EXPORTER_PORT"
        if exporter.port == "auto":
            base, span = AUTO_PORTS[kind]
            lines.append(f"{var}=$(( {base} + ${{SLURM_JOB_ID:-0}} % {span} ))")
        else:
            lines.append(f"{var}={int(exporter.port)}")
        prefix = []
        if exporter.image:
            prefix = ["apptainer", "exec", *(["--nv"] if kind == "dcgm" else []), exporter.image]
        log = f'fb-{kind}-exporter-"${{SLURM_JOB_ID:-0}}".log'
        lines += [f"{_argv([*prefix, *exporter.command], var)} >{log} 2>&1 &", 'FB_CHILDREN+=("$!")']
        targets.append((kind, var, {}))
    if recipe.monitoring.prometheus and for_kind(recipe.service.kind):
        targets.append(("service", "FB_PORT", {"__metrics_path__": recipe.monitoring.metrics_path}))
    group = '{"targets": ["%s:%s"], "labels": {"slurm_job_id": "%s", "node": "%s", %s}}'
    fmt = "[" + ", ".join([group] * len(targets)) + "]\\n"
    args = []
    for kind, var, extra in targets:  # values are printf arguments, never part of its format
        static = json.dumps({"exporter": kind, "recipe": recipe.name, "run_tag": run_tag, **extra})[1:-1]
        args += ['"${FB_NODE}"', f'"${{{var}}}"', '"${SLURM_JOB_ID:-0}"', '"${FB_NODE}"', shlex.quote(static)]
    lines += [f"mkdir -p {sd_dir}",
              f'printf {shlex.quote(fmt)} {" ".join(args)} >"$FB_SD_FILE.tmp"',
              'mv "$FB_SD_FILE.tmp" "$FB_SD_FILE"']
    return "\n".join(lines)
