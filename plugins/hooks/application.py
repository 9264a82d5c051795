"""ApplicationHook: a business application's connector, built from an Airflow Connection.

Credentials live only in the connection (host, login, password, extra); specs name the connection id.
    sql  : conn_type sqlite (host = file path) or postgres; extra {"sqlalchemy_url": ...} overrides
    rest : host = base URL (or host + port + schema http/https); login/password = basic auth;
           extra {"token": ...} = bearer token, {"headers": {...}} = more headers;
           extra {"oauth2_token_url": ..., "oauth2_scope": ...} = OAuth2 client credentials (login = client id,
           password = client secret)
    file : extra {"path": "/folder"} or host = the folder

Airflow masks a connection's password in task logs, and the values of extra keys with sensitive names. The hook
adds what Airflow does not know: every credential the connector will use (the basic-auth header's base64, a
token, secret-looking header values, a password inside a URL: host or extra sqlalchemy_url, each OAuth2 access
token as it is fetched), each plain, URL-encoded and JSON-escaped, so no log line holds one in any form
(airflow.sdk.log.mask_secret also tells the task's supervisor, which writes the log file).
"""

from __future__ import annotations

from airflow.sdk import BaseHook

from flowlink.connectors.base import ConnectorError, Source, Target
from flowlink.connectors.file import FileSource, FileTarget, folder_from_connection
from flowlink.connectors.oauth2 import ClientCredentials
from flowlink.connectors.rest import RestSource, RestTarget, connection_secrets, rest_settings_from_connection
from flowlink.connectors.sql import SqlSource, SqlTarget, sql_url_from_connection, url_secrets
from flowlink.errors import FlowlinkError, secret_forms


def _mask(secrets: list[str]) -> None:
    """Hand every form of the connection's credentials to Airflow's secrets masker (task logs show ***)."""
    from airflow.sdk.log import mask_secret

    for secret in secrets:
        mask_secret(secret)


class ApplicationHook(BaseHook):
    conn_name_attr = "conn_id"
    default_conn_name = "flowlink_default"
    conn_type = "generic"
    hook_name = "Flowlink application"

    def __init__(self, conn_id: str, app_type: str, **kwargs):
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.app_type = app_type

    def _fields(self) -> dict:
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            conn = self.get_connection(self.conn_id)
        except AirflowNotFoundException:
            raise ConnectorError(
                f"connection {self.conn_id!r} isn't defined in Airflow: add it (airflow connections "
                f"add {self.conn_id} --conn-json ...) or correct the spec"
            ) from None
        _mask(secret_forms([conn.password]))
        return dict(
            conn_type=conn.conn_type,
            host=conn.host,
            login=conn.login,
            password=conn.password,
            port=conn.port,
            schema=conn.schema,
            extra=conn.extra_dejson,
        )

    def _sql_url(self) -> str:
        url = sql_url_from_connection(**self._fields())
        _mask(url_secrets(url))
        return url

    def _rest_settings(self) -> dict:
        settings = rest_settings_from_connection(**self._fields())
        _mask(connection_secrets(settings))
        if isinstance(settings["auth"], ClientCredentials):
            settings["auth"].on_token = lambda token: _mask(secret_forms([token]))
        return settings

    def _folder(self) -> str:
        fields = self._fields()
        try:
            return folder_from_connection(fields["host"], fields["extra"])
        except FlowlinkError as exc:
            raise ConnectorError(f"connection {self.conn_id!r}: {exc}") from None

    def get_source(self, *, unreachable_after: float | None = None) -> Source:
        """``unreachable_after``: seconds to keep trying an application that cannot be connected to (default
        FLOWLINK_UNREACHABLE_AFTER, as a run); 0 says it at once (a try, whose page waits)."""
        if self.app_type == "sql":
            return SqlSource(self._sql_url(), unreachable_after=unreachable_after)
        if self.app_type == "rest":
            return RestSource(**self._rest_settings(), unreachable_after=unreachable_after)
        return FileSource(self._folder())

    def get_target(self) -> Target:
        if self.app_type == "sql":
            return SqlTarget(self._sql_url())
        if self.app_type == "rest":
            return RestTarget(**self._rest_settings())
        return FileTarget(self._folder())
