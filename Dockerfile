# The official Airflow image with Flowlink: requirements.txt's pins and this project (docker-compose.yaml builds it).
FROM apache/airflow:3.3.2

# Dependencies first (a cached layer while only the project changes). The image has Airflow already; naming
# apache-airflow again keeps pip from moving it. The test tools and the editable install are left out here.
COPY --chown=airflow:0 requirements.txt /opt/flowlink/requirements.txt
RUN grep -vE '^(-e |pytest==|pytest-timeout==|playwright==)' /opt/flowlink/requirements.txt > /tmp/requirements-image.txt \
 && pip install --no-cache-dir "apache-airflow==3.3.2" -r /tmp/requirements-image.txt \
 && rm /tmp/requirements-image.txt

# The project: the flowlink command, dags/ and plugins/ (the compose file mounts the latter two over these).
# Editable, as requirements.txt installs it: the store's migrations are read from the source tree.
COPY --chown=airflow:0 . /opt/flowlink
RUN pip install --no-cache-dir --no-deps -e /opt/flowlink \
 && mkdir -p /opt/airflow/config /opt/airflow/flowlink/published /opt/airflow/flowlink/live \
      /opt/airflow/flowlink/staging /opt/airflow/agent-tokens/cloud /opt/airflow/agent-tokens/site_b \
 && chmod -R g+rwX /opt/airflow/config /opt/airflow/flowlink /opt/airflow/agent-tokens
# (The folders exist in the image so that the compose file's named volumes start out owned by airflow.)
