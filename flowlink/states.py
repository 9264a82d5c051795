"""The words Flowlink stores and shows for what happened: one StrEnum each, shared by every module.

Each value is the string in the store's status/step/action columns and in the API's JSON, so a member compares
equal to the stored text (``RecordStatus.FAILED == "failed"``) and serializes as it.
"""

from __future__ import annotations

from enum import StrEnum


class RecordStatus(StrEnum):
    """A record in the resync bucket and the data log."""

    UNPROCESSED = "unprocessed"  # left behind by a step that failed as a whole; the next run or a resync takes it
    SUCCESS = "success"
    FAILED = "failed"
    SKIPPED = "skipped"


class Step(StrEnum):
    """The three steps of a touchpoint, in order (task ids are <touchpoint>.<step>)."""

    EXTRACT = "extract"
    TRANSFORM = "transform"
    LOAD = "load"


class StepStatus(StrEnum):
    """A step in a run's snapshot."""

    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    SKIPPED = "skipped"


class StepFailure(StrEnum):
    """Why a failed step failed: some records failed (see the bucket), or the step as a whole."""

    RECORDS = "records"
    STEP = "step"


class DeploymentAction(StrEnum):
    DEPLOY = "deploy"
    UNDEPLOY = "undeploy"


class DeploymentStatus(StrEnum):
    PENDING = "pending"
    SUCCESSFUL = "successful"
    UNSUCCESSFUL = "unsuccessful"


class DeploymentStep(StrEnum):
    """The steps an agent reports, in order, for each action (``DEPLOYMENT_STEPS``)."""

    DOWNLOADING_WORKFLOW = "downloading workflow data"
    DOWNLOADING_STYLESHEETS = "downloading stylesheets"
    INSTALLING = "installing"
    DEPLOYED = "deployed"
    REMOVING = "removing installed files"
    UNDEPLOYED = "undeployed"


DEPLOYMENT_STEPS: dict[DeploymentAction, tuple[DeploymentStep, ...]] = {
    DeploymentAction.DEPLOY: (DeploymentStep.DOWNLOADING_WORKFLOW, DeploymentStep.DOWNLOADING_STYLESHEETS,
                              DeploymentStep.INSTALLING, DeploymentStep.DEPLOYED),
    DeploymentAction.UNDEPLOY: (DeploymentStep.REMOVING, DeploymentStep.UNDEPLOYED),
}


class LogStatus(StrEnum):
    """A line of a deployment's step log."""

    DONE = "done"
    FAILED = "failed"
    INFO = "info"
