"""The admin page's dataset search in headless Chromium against a real control plane: a dataset
whose upload failed for good shows why, in place of a cloud URI."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from edge_support import ADMIN_TOKEN, ControlPlaneServer
from playwright.sync_api import expect

from axon_dagster.store import UnitOfWorkFactory, make_engine, upgrade
from axon_dagster.store.bulk import insert_rows
from axon_dagster.store.schema import BatchRow, DatasetRow, OrderRow, TaskRow

pytestmark = pytest.mark.timeout(120)
T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
ERROR = "ObjectStoreUnavailable: S3 endpoint http://minio:9000 unreachable (run 4f2a)"


@pytest.fixture
def control_plane(tmp_path):
    url = f"sqlite:///{tmp_path / 'cp.db'}"
    upgrade(url)
    task = dict(order_id="o1", batch_id="o1_b", scene="warehouse", sub_scene="aisle_1", skills=["pick"], duration_seconds=5.0,
                topics=["/imu"], priority=0, status="EXECUTED", robot_id=None, data_collector_id=None, config_path=None,
                dataset_path=None, failure_reason=None, created_at=T0, updated_at=T0)
    engine = make_engine(url)
    uow = UnitOfWorkFactory(engine)()
    with uow.writing():
        s = uow.session
        insert_rows(s, OrderRow.__table__, [dict(order_id="o1", scene="warehouse", sub_scene="aisle_1", skills=["pick"],
                                                 requirements={}, priority=0, created_by="", created_at=T0,
                                                 auto_approve_batches=True, recording_template="default")])
        insert_rows(s, BatchRow.__table__, [dict(batch_id="o1_b", order_id="o1", scene="warehouse", sub_scene="aisle_1",
                                                 skills=["pick"], task_count=2, duration_seconds=5.0, topics=[], created_at=T0,
                                                 review_status="approved")])
        insert_rows(s, TaskRow.__table__, [dict(task, task_id="t_failed", revision=1), dict(task, task_id="t_uploaded", revision=2)])
        insert_rows(s, DatasetRow.__table__, [
            dict(dataset_id="t_failed", task_id="t_failed", status="INSPECTED", qc_outcome="approved", qc_score=1.0,
                 cloud_uri=None, last_upload_error=ERROR, created_at=T0, updated_at=T0),
            dict(dataset_id="t_uploaded", task_id="t_uploaded", status="UPLOADED", qc_outcome="approved", qc_score=1.0,
                 cloud_uri="s3://datasets/t_uploaded", last_upload_error=None, created_at=T0, updated_at=T0),
        ])
        uow.commit()
    engine.dispose()
    server = ControlPlaneServer(url)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_a_failed_upload_shows_its_reason_in_the_dataset_search(control_plane, page):
    page.goto(control_plane.url + "/admin")
    page.fill("#token", ADMIN_TOKEN)
    page.click("#search button[type=submit]")
    expect(page.locator("#search-total")).to_contain_text("2 dataset(s)")
    failed = page.locator("tr[data-dataset-id='t_failed'] td").last
    expect(failed).to_have_text("upload failed: " + ERROR)
    expect(failed).to_have_attribute("title", ERROR)
    expect(page.locator("tr[data-dataset-id='t_uploaded'] td").last).to_have_text("s3://datasets/t_uploaded")
