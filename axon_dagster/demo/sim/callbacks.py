"""Axon's start/finish callbacks: one POST per event, on a thread of its own."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone
from typing import Any

import httpx

from .session import CALLBACK_TIMEOUT_SECONDS, Session

logger = logging.getLogger(__name__)


def send_callback(session: Session, url_field: str, payload: dict[str, Any], delay: float = 0.0) -> None:
    """POST ``payload`` to the task's callback URL on a thread of its own, once, with
    ``Authorization: Bearer <user_token>``, as Axon's callback client does: a slow or broken
    receiver never holds up the recording, and the finish callback may arrive after the
    finish reply."""
    url = session.task_config.get(url_field)
    if not url:
        return
    token = session.task_config.get("user_token")
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    def post() -> None:
        if delay > 0:
            time.sleep(delay)
        try:
            response = httpx.post(url, json=payload, headers=headers, timeout=CALLBACK_TIMEOUT_SECONDS)
            if response.status_code >= 400:
                logger.warning("%s %s for task %s answered HTTP %d", url_field, url, payload["task_id"], response.status_code)
            else:
                logger.info("%s delivered for task %s (%s)", url_field, payload["task_id"], payload["status"])
        except httpx.HTTPError as exc:
            logger.warning("%s %s for task %s failed: %s", url_field, url, payload["task_id"], exc)

    threading.Thread(target=post, name=f"axon-sim-callback-{payload['task_id']}", daemon=True).start()


def callback_time(ns: int) -> str:
    """The callbacks' time format: whole seconds, UTC (``YYYY-MM-DDTHH:MM:SSZ``)."""
    return datetime.fromtimestamp(ns // 1_000_000_000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
