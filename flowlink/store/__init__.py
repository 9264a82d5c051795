"""The Flowlink store: resync bucket, snapshots, feeds and sync state, on any SQLAlchemy database."""

from flowlink.store.db import Store

__all__ = ["Store"]
