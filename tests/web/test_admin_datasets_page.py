"""The admin page's dataset search in headless Chromium against a real control plane: a dataset
whose upload failed for good shows why, in place of a cloud URI."""

from __future__ import annotations

import pytest
from browser import create_account, sign_in
from edge_support import ADMIN_TOKEN, ControlPlaneServer
from seed_rows import seed_order
from playwright.sync_api import expect


pytestmark = pytest.mark.timeout(120)
ERROR = "ObjectStoreUnavailable: S3 endpoint http://minio:9000 unreachable (run 4f2a)"


@pytest.fixture
def control_plane(tmp_path):
    url = f"sqlite:///{tmp_path / 'cp.db'}"
    seed_order(
        url,
        batches=[dict(batch_id="o1_b", review_status="approved")],
        tasks=[dict(task_id="t_failed", batch_id="o1_b", revision=1), dict(task_id="t_uploaded", batch_id="o1_b", revision=2)],
        datasets=[
            dict(dataset_id="t_failed", task_id="t_failed", status="INSPECTED", qc_outcome="approved", qc_score=1.0,
                 cloud_uri=None, last_upload_error=ERROR),
            dict(dataset_id="t_uploaded", task_id="t_uploaded", status="UPLOADED", qc_outcome="approved", qc_score=1.0,
                 cloud_uri="s3://datasets/t_uploaded", last_upload_error=None),
        ],
    )
    server = ControlPlaneServer(url)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_a_failed_upload_shows_its_reason_in_the_dataset_search(control_plane, page):
    create_account(control_plane.url, ADMIN_TOKEN, "vera", "viewer")
    sign_in(page, control_plane.url, "vera")  # searching needs only the viewer role
    page.click("#search button[type=submit]")
    expect(page.locator("#search-total")).to_contain_text("2 dataset(s)")
    failed = page.locator("tr[data-dataset-id='t_failed'] td").last
    expect(failed).to_have_text("upload failed: " + ERROR)
    expect(failed).to_have_attribute("title", ERROR)
    expect(page.locator("tr[data-dataset-id='t_uploaded'] td").last).to_have_text("s3://datasets/t_uploaded")
