# The Airflow image with factorybench installed: used by docker-compose.yaml and by the Helm values
# (deploy/helm/values.yaml). DAGs, plugin, recipes, cluster profiles and the pool script are baked in
# at the paths the deployments' environment names (compose bind-mounts the repo's copies over them).
FROM apache/airflow:3.3.2-python3.11
USER root
RUN apt-get update && apt-get install -y --no-install-recommends openssh-client && rm -rf /var/lib/apt/lists/*
USER airflow
COPY --chown=airflow:root requirements.txt constraints.txt pyproject.toml /opt/factorybench/
COPY --chown=airflow:root include /opt/factorybench/include
RUN pip install --no-cache-dir -r /opt/factorybench/requirements.txt -c /opt/factorybench/constraints.txt \
 && pip install --no-cache-dir --no-deps -e /opt/factorybench
COPY --chown=airflow:root dags /opt/airflow/dags
COPY --chown=airflow:root plugins /opt/airflow/plugins
COPY --chown=airflow:root recipes /opt/factorybench/recipes
COPY --chown=airflow:root config /opt/factorybench/config
COPY --chown=airflow:root scripts/pools.sh /opt/factorybench/scripts/pools.sh
