"""Robot -> cloud: deliver the outbox's status events in order, backing off while the control
plane is down; a refused event is kept for inspection and never blocks the ones after it."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

from axon_dagster.client import ControlPlaneError, ControlPlaneUnavailable

from .db import OutboxEvent

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryReport:
    sent: int
    delivered: int
    rejected: int
    error: str | None = None



class Outbox:
    """Mixed into :class:`axon_edge.agent.EdgeAgent` (its state: ``db``, ``recorder``, ``health``, locks, wake events)."""

    def _outbox_loop(self) -> None:
        while not self._stop.is_set():
            try:
                report = self.deliver_once()
            except Exception:  # never let the loop die; the backlog is visible in /status and /metrics
                log.exception("outbox delivery failed unexpectedly")
                report = DeliveryReport(sent=0, delivered=0, rejected=0, error="unexpected error")
            if report.error:
                delay = self._backoff()
                self._outbox_wake.wait(delay)
            elif report.sent == 0:
                self._outbox_wake.wait(self.poll_interval)
            # else: more may be waiting, go again right away
            self._outbox_wake.clear()

    def _backoff(self) -> float:
        failures = max(1, self.health.delivery_failures_in_a_row)
        delay = min(self.max_backoff_seconds, self.retry_base_seconds * 2 ** (failures - 1))
        # Jitter: a fleet coming back online must not hit the control plane in lockstep.
        return delay * random.uniform(0.8, 1.0)

    def deliver_once(self) -> DeliveryReport:
        """Send the oldest undelivered events (one batch, in order) and record the answers."""
        events = self.db.undelivered_events(self.outbox_batch_size)
        if not events:
            return DeliveryReport(sent=0, delivered=0, rejected=0)
        try:
            results = self._push(events)
        except ControlPlaneError as exc:
            if exc.status_code in (400, 404, 422) and len(events) > 1:
                # The control plane refuses the whole request for one bad event: find it.
                return self._deliver_one_by_one(events)
            if exc.status_code in (400, 404, 422):
                return self._reject_locally(events[0], f"{exc.status_code}: {exc.detail}")
            return self._delivery_failed(events, f"control plane error {exc.status_code}: {exc.detail}")
        except ControlPlaneUnavailable as exc:
            return self._delivery_failed(events, f"control plane unavailable: {exc}")
        self.db.record_delivery(results)
        rejected = [(event_id, error) for event_id, result, error in results if result == "rejected"]
        for event_id, error in rejected:
            log.error("control plane rejected event %s: %s", event_id, error)
            self.health.rejected_event_ids.append(event_id)
        if self.health.delivery_failures_in_a_row:
            log.info("control plane reachable again; delivering the outbox backlog")
        self.health.delivery_failures_in_a_row = 0
        self.health.last_delivery_error = None
        self.health.last_delivery_at = time.time()
        log.info("delivered %d event(s) (%d rejected)", len(results), len(rejected))
        return DeliveryReport(sent=len(events), delivered=len(results), rejected=len(rejected))

    def _push(self, events: list[OutboxEvent]) -> list[tuple[str, str, str | None]]:
        reply = self.control_plane.push_events([e.wire() for e in events])
        raw = reply.get("results") if isinstance(reply, Mapping) else reply
        if not isinstance(raw, list):
            raise ControlPlaneError(502, f"unexpected reply to push_events: {reply!r}")
        sent_ids = {e.event_id for e in events}
        results = []
        for item in raw:
            if isinstance(item, Mapping):
                event_id, result, error = item.get("event_id"), item.get("result"), item.get("error")
            else:
                event_id, result, error = getattr(item, "event_id", None), getattr(item, "result", None), getattr(item, "error", None)
            result = getattr(result, "value", result)
            if event_id not in sent_ids or result not in ("applied", "duplicate", "rejected"):
                raise ControlPlaneError(502, f"unexpected result in reply to push_events: {item!r}")
            results.append((str(event_id), str(result), error))
        return results

    def _deliver_one_by_one(self, events: list[OutboxEvent]) -> DeliveryReport:
        delivered = rejected = 0
        for event in events:
            try:
                results = self._push([event])
            except ControlPlaneError as exc:
                if exc.status_code in (400, 404, 422):
                    self._reject_locally(event, f"{exc.status_code}: {exc.detail}")
                    rejected += 1
                    continue
                return self._delivery_failed([event], f"control plane error {exc.status_code}: {exc.detail}")
            except ControlPlaneUnavailable as exc:
                return self._delivery_failed([event], f"control plane unavailable: {exc}")
            self.db.record_delivery(results)
            delivered += 1
        return DeliveryReport(sent=len(events), delivered=delivered, rejected=rejected)

    def _reject_locally(self, event: OutboxEvent, error: str) -> DeliveryReport:
        # Retrying would get the same answer forever; keep the event for inspection and move on.
        log.error("control plane refused event %s for good: %s", event.event_id, error)
        self.db.record_delivery([(event.event_id, "rejected", error)])
        self.health.rejected_event_ids.append(event.event_id)
        return DeliveryReport(sent=1, delivered=0, rejected=1)

    def _delivery_failed(self, events: list[OutboxEvent], error: str) -> DeliveryReport:
        self.db.record_delivery_failure([e.event_id for e in events], error)
        self.health.delivery_failures_in_a_row += 1
        if self.health.delivery_failures_in_a_row == 1 or self.health.last_delivery_error != error:
            log.warning("cannot deliver %d event(s), will retry with backoff: %s", len(events), error)
        self.health.last_delivery_error = error
        return DeliveryReport(sent=len(events), delivered=0, rejected=0, error=error)

