"""ApplicationHook: a business application's connector, built from an Airflow Connection.

Credentials live only in the connection (host, login, password, extra); specs name the connection id.
    sql  : conn_type sqlite (host = file path) or postgres; extra {"sqlalchemy_url": ...} overrides
    rest : host = base URL (or host + port + schema http/https); login/password = basic auth;
           extra {"token": ...} = bearer token, {"headers": {...}} = more headers
    file : extra {"path": "/folder"} or host = the folder
"""

from __future__ import annotations

from airflow.sdk import BaseHook

from flowlink.connectors.base import Source, Target
from flowlink.connectors.file import FileSource, FileTarget
from flowlink.connectors.rest import RestSource, RestTarget, rest_settings_from_connection
from flowlink.connectors.sql import SqlSource, SqlTarget, sql_url_from_connection
from flowlink.errors import FlowlinkError


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
        conn = self.get_connection(self.conn_id)
        return dict(conn_type=conn.conn_type, host=conn.host, login=conn.login, password=conn.password,
                    port=conn.port, schema=conn.schema, extra=conn.extra_dejson)

    def _folder(self) -> str:
        fields = self._fields()
        folder = fields["extra"].get("path") or fields["host"]
        if not folder:
            raise FlowlinkError(f"connection {self.conn_id!r} names no folder: set extra {{\"path\": \"/folder\"}} or host")
        return folder

    def get_source(self) -> Source:
        if self.app_type == "sql":
            return SqlSource(sql_url_from_connection(**self._fields()))
        if self.app_type == "rest":
            return RestSource(**rest_settings_from_connection(**self._fields()))
        return FileSource(self._folder())

    def get_target(self) -> Target:
        if self.app_type == "sql":
            return SqlTarget(sql_url_from_connection(**self._fields()))
        if self.app_type == "rest":
            return RestTarget(**rest_settings_from_connection(**self._fields()))
        return FileTarget(self._folder())
