# factorybench: the two commands in the README are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

help:
	@echo "make demo     set up everything, run the smoke benchmark DAG end to end, print the result"
	@echo "make test     run the whole test suite (brings the dev cluster up first)"
	@echo "make airflow  start Airflow (UI + REST API on http://127.0.0.1:8080) with the project's DAGs"
	@echo "make cluster  bring the loopback SLURM dev cluster up (devcluster/cluster.sh up)"
	@echo "make down     stop the dev clusters and Airflow"

$(STAMP): requirements.txt constraints.txt pyproject.toml scripts/bootstrap.sh
	bash scripts/bootstrap.sh
	touch $@

install: $(STAMP)

cluster: install
	devcluster/cluster.sh up || { echo "native SLURM cluster unavailable: the demo falls back to the local transport"; true; }

demo: cluster
	bash scripts/demo.sh

test: install
	bash scripts/test.sh

airflow: cluster
	bash scripts/airflow.sh

down:
	bash scripts/airflow.sh stop
	-for f in native trixie forky; do devcluster/cluster.sh down $$f; done

.PHONY: help install cluster demo test airflow down
