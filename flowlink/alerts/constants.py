"""The alert events, the daily summary and the limits every part of flowlink.alerts shares."""

RUN_FAILED = "run_failed"
RECORDS_FAILED = "records_failed"
DEPLOYMENT_UNSUCCESSFUL = "deployment_unsuccessful"
AGENT_DISCONNECTED = "agent_disconnected"
RUN_BLOCKED = "run_blocked"
EVENTS = (RUN_FAILED, RECORDS_FAILED, DEPLOYMENT_UNSUCCESSFUL, AGENT_DISCONNECTED, RUN_BLOCKED)
DAILY_SUMMARY = "daily_summary"  # not an event: channels with daily_summary set get it
LISTED = 20  # records named in one alert; the bucket link shows them all
CHUNK = 500
