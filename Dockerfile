# The official Airflow image with Flowlink installed from its wheel (docker-compose.yaml builds it).

# The wheel, built from the repository's files (.dockerignore keeps tests, the venv and build leftovers out).
FROM apache/airflow:3.3.2 AS wheel
COPY --chown=airflow:0 . /tmp/flowlink-source
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /tmp/flowlink-wheel /tmp/flowlink-source

FROM apache/airflow:3.3.2

# Dependencies first (a cached layer while only the project changes): requirements.txt's pins without the test
# tools and without its editable `-e .`. The image has Airflow already; naming apache-airflow again keeps pip from
# moving it.
COPY --chown=airflow:0 requirements.txt /tmp/requirements.txt
RUN grep -vE '^(-e |pytest==|pytest-timeout==|hypothesis==|playwright==|aiosmtpd==|ruff==|mypy==|types-)' \
      /tmp/requirements.txt > /tmp/requirements-image.txt \
 && pip install --no-cache-dir "apache-airflow==3.3.2" -r /tmp/requirements-image.txt

# Flowlink from its wheel (not editable: the package carries its migrations, templates and static files), with the
# same pins so pip keeps them; Airflow finds the plugin through the package's entry point, so no plugins folder.
# `flowlink dags write` puts Flowlink's one-line DAG files into the image's DAGs folder, /opt/airflow/dags.
COPY --chown=airflow:0 --from=wheel /tmp/flowlink-wheel /tmp/flowlink-wheel
RUN pip install --no-cache-dir "apache-airflow==3.3.2" -r /tmp/requirements-image.txt \
      /tmp/flowlink-wheel/flowlink-*.whl \
 && rm -r /tmp/flowlink-wheel /tmp/requirements.txt /tmp/requirements-image.txt \
 && flowlink dags write /opt/airflow/dags \
 && mkdir -p /opt/airflow/config /opt/airflow/flowlink/published /opt/airflow/flowlink/live \
      /opt/airflow/flowlink/staging /opt/airflow/agent-tokens/cloud /opt/airflow/agent-tokens/site_b \
 && chmod -R g+rwX /opt/airflow/config /opt/airflow/flowlink /opt/airflow/agent-tokens
# (The folders exist in the image so that the compose file's named volumes start out owned by airflow.)
