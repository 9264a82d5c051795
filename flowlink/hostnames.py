"""The host name Airflow records for a worker (`[core] hostname_callable`, set in airflow.env).

Airflow writes it on every task instance, and Flowlink copies it into each snapshot step, so a step tells
which worker ran it. In containers the host name is the container's, which is what you want; two workers on
one machine (tests/test_distributed.py, or a small site running both of its workers on one host) would
report the same name, so each can be given its own with FLOWLINK_WORKER_NAME.
"""

from __future__ import annotations

import os
import socket


def worker_hostname() -> str:
    """FLOWLINK_WORKER_NAME when set, else the machine's fully qualified name, found as Airflow's default does."""
    return os.environ.get("FLOWLINK_WORKER_NAME", "").strip() or _fqdn()


def _fqdn() -> str:
    name = socket.gethostname()
    try:
        addrs = socket.getaddrinfo(name, None, 0, socket.SOCK_DGRAM, 0, socket.AI_CANONNAME)
    except OSError:
        return name
    return next((addr[3] for addr in addrs if addr[3]), name)
