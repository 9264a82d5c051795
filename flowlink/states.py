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


class TrialStatus(StrEnum):
    """A record in a try (flowlink.trial): what a run would do with it."""

    READY = "ready"  # the load would send it
    FAILED = "failed"
    SKIPPED = "skipped"  # the stylesheet produced nothing for it


class TryStatus(StrEnum):
    """A try on the Try page (flowlink.tries): its samples fetched by a flowlink_try run on the environment's queue."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"


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


class ResyncKind(StrEnum):
    """Who asked for a resync: a user who chose the records, or the automatic retry of failed records."""

    MANUAL = "manual"
    RETRY = "retry"


class RunKind(StrEnum):
    """A run as the snapshots show it: a sync of the whole workflow, a resync a user asked for, or a retry."""

    SYNC = "sync"
    RESYNC = "resync"
    RETRY = "retry"


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
    DeploymentAction.DEPLOY: (
        DeploymentStep.DOWNLOADING_WORKFLOW,
        DeploymentStep.DOWNLOADING_STYLESHEETS,
        DeploymentStep.INSTALLING,
        DeploymentStep.DEPLOYED,
    ),
    DeploymentAction.UNDEPLOY: (DeploymentStep.REMOVING, DeploymentStep.UNDEPLOYED),
}


class LogStatus(StrEnum):
    """A line of a deployment's step log."""

    DONE = "done"
    FAILED = "failed"
    INFO = "info"


class AlertEvent(StrEnum):
    """What an alert is about (alerts_sent.event). A channel hears of the events it names (``ALERT_EVENTS``, none
    named = all); DAILY_SUMMARY is no event: channels with daily_summary set get it."""

    RUN_FAILED = "run_failed"
    RECORDS_FAILED = "records_failed"
    DEPLOYMENT_UNSUCCESSFUL = "deployment_unsuccessful"
    AGENT_DISCONNECTED = "agent_disconnected"
    RUN_BLOCKED = "run_blocked"
    DAILY_SUMMARY = "daily_summary"


ALERT_EVENTS = tuple(e for e in AlertEvent if e is not AlertEvent.DAILY_SUMMARY)


class ChannelKind(StrEnum):
    """How an alert channel is reached (alert_channels.kind)."""

    EMAIL = "email"  # target: addresses, through Airflow's SMTP connection
    WEBHOOK = "webhook"  # target: an Airflow connection id (the URL and its auth)
