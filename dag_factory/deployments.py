"""The Airflow DAG that tracks Flowlink deployments: one run per deployment, conf {"deployment_id": N}."""

from airflow.sdk import DAG, Param

from flowlink_airflow.sensors.deployment import DeploymentSensor

with DAG(
    dag_id="flowlink_deployments",
    description="Tracks each Flowlink deployment from Pending to Successful or Unsuccessful",
    schedule=None,
    catchup=False,
    is_paused_upon_creation=False,
    max_active_runs=32,
    tags=["flowlink"],
    params={"deployment_id": Param(None, type=["null", "integer"], description="the deployment to track")},
    doc_md=__doc__,
) as dag:
    DeploymentSensor(task_id="track", deployment_id="{{ params.deployment_id }}")
