# The Airflow image with factorybench installed: used by docker-compose.yaml.
FROM apache/airflow:3.3.2-python3.11
USER root
RUN apt-get update && apt-get install -y --no-install-recommends openssh-client && rm -rf /var/lib/apt/lists/*
USER airflow
COPY --chown=airflow:root requirements.txt constraints.txt pyproject.toml /opt/factorybench/
COPY --chown=airflow:root include /opt/factorybench/include
RUN pip install --no-cache-dir -r /opt/factorybench/requirements.txt -c /opt/factorybench/constraints.txt \
 && pip install --no-cache-dir --no-deps -e /opt/factorybench
