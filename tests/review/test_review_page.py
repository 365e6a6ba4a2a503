"""The reviewer page in a real headless Chromium against the real API: the queue shows the QC
report, the rate plot drawn from the series the data flow stored with it (the API reads no
recording: the plot is drawn with the dataset's files gone), metadata and lineage; approve and reject persist
with reviewer and comment; a second decision is refused (409) and changes nothing."""

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from axon_dagster.client import ControlPlaneError

playwright_sync = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import expect  # noqa: E402

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator:
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    yield pg
    context.close()


def card(page, dataset_id):
    return page.locator(f'section.card[data-dataset="{dataset_id}"]')


def delete_recording(world, task_id: str) -> None:
    """The dataset's files, wherever the data flow left them, gone (as on another machine)."""
    cache_path = Path(world.admin.get_dataset(task_id)["cache_path"])
    assert cache_path.is_dir()
    shutil.rmtree(cache_path)
    assert not cache_path.exists()


def plot_svg(world, task_id: str) -> str:
    response = httpx.get(f"{world.url}/api/v1/datasets/{task_id}/rate-plot.svg")
    assert response.status_code == 200 and response.headers["content-type"].startswith("image/svg+xml"), response.text
    return response.text


def test_queue_shows_report_plot_metadata_and_lineage(world, page):
    task_id = world.inspected_task()
    task = world.admin.get_task(task_id)
    series = world.admin.get_dataset(task_id)["inspection_report"]["rate_series"]
    assert sorted(series["rates_hz"]) == ["/camera/image_raw", "/imu", "/joint_states"]
    delete_recording(world, task_id)
    assert plot_svg(world, task_id).count('class="rate-line"') == 3
    page.goto(f"{world.url}/review")
    c = card(page, task_id)
    assert c.count() == 1
    lineage = c.locator("table.lineage").inner_text()
    for value in (task["order_id"], task["batch_id"], task_id, "robot-1", "carol", "warehouse/aisle_1", "pick"):
        assert value in lineage, value
    # The failing check is named in the report table, marked failed.
    failed = c.locator("table.checks tr.fail").all_inner_texts()
    assert any("max_gap" in row and "FAIL" in row for row in failed), failed
    assert "needs_review" in c.locator("table.meta").inner_text()
    # One line per recorded topic; the 2 s stall shows as buckets at 0 Hz on every line.
    lines = c.locator("svg.rate-plot polyline.rate-line")
    assert sorted(lines.evaluate_all("ls => ls.map(l => l.dataset.topic)")) == ["/camera/image_raw", "/imu", "/joint_states"]
    points = lines.first.get_attribute("points").split()
    bottom = max(float(p.split(",")[1]) for p in points)
    assert sum(1 for p in points if float(p.split(",")[1]) == bottom) >= 2


def test_a_report_without_or_with_a_malformed_series_shows_why_there_is_no_plot(world, page):
    old, bad = world.inspected_task(), world.inspected_task()
    report = world.admin.get_dataset(old)["inspection_report"]
    before_series = {k: v for k, v in report.items() if k != "rate_series"}  # as inspected before series were stored
    world.admin.dataset_inspected(old, score=report["score"], outcome="needs_review", report=before_series)
    malformed = {**report, "rate_series": {**report["rate_series"], "bucket_seconds": -1}}
    world.admin.dataset_inspected(bad, score=report["score"], outcome="needs_review", report=malformed)
    assert "no rate series recorded" in plot_svg(world, old) and "rate-line" not in plot_svg(world, old)
    assert "bucket_seconds must be a positive number" in plot_svg(world, bad) and "rate-line" not in plot_svg(world, bad)
    page.goto(f"{world.url}/review/{old}")
    expect(card(page, old).locator("svg.rate-plot-none")).to_contain_text("no rate series recorded")
    page.goto(f"{world.url}/review/{bad}")
    expect(card(page, bad).locator("svg.rate-plot-error")).to_contain_text("malformed")
    assert card(page, bad).locator("table.checks").count() == 1  # the rest of the card is there


def test_approve_and_reject_in_the_browser_persist_and_are_final(world, page):
    approve_id, reject_id = world.inspected_task(), world.inspected_task()
    page.goto(f"{world.url}/review")

    # No reviewer id: refused in the page, nothing sent.
    card(page, approve_id).locator("button.approve").click()
    assert "reviewer id" in card(page, approve_id).locator(".error").inner_text()
    assert world.admin.get_dataset(approve_id)["reviewed_by"] is None

    page.fill("#reviewer", "alice")
    card(page, approve_id).locator("textarea[name=comment]").fill("stall is during a pause, data is fine")
    card(page, approve_id).locator("button.approve").click()
    expect(card(page, approve_id).locator(".decision")).to_contain_text("approved")

    page.fill("#reviewer", "bob")
    card(page, reject_id).locator("textarea[name=comment]").fill("camera stalls mid-grasp")
    card(page, reject_id).locator("button.reject").click()
    expect(card(page, reject_id).locator(".decision")).to_contain_text("rejected")

    approved, rejected = world.admin.get_dataset(approve_id), world.admin.get_dataset(reject_id)
    assert (approved["qc_outcome"], approved["reviewed_by"], approved["review_comment"]) == (
        "approved",
        "alice",
        "stall is during a pause, data is fine",
    )
    assert (rejected["qc_outcome"], rejected["reviewed_by"], rejected["review_comment"]) == ("rejected", "bob", "camera stalls mid-grasp")

    # Decided datasets leave the queue; their own page shows the decision and offers no buttons.
    page.reload()
    assert card(page, approve_id).count() == 0 and card(page, reject_id).count() == 0
    page.goto(f"{world.url}/review/{approve_id}")
    assert "approved by alice" in card(page, approve_id).locator(".decision").inner_text()
    assert card(page, approve_id).locator("button").count() == 0

    # A second decision over the API: 409, clear message, nothing changes.
    with pytest.raises(ControlPlaneError) as refused:
        world.admin.review_dataset(approve_id, reviewer="bob", approve=False, comment="changed my mind")
    assert refused.value.status_code == 409 and "already reviewed by alice" in refused.value.detail
    assert world.admin.get_dataset(approve_id) == approved


def test_a_stale_page_cannot_overwrite_a_decision(world, page):
    task_id = world.inspected_task()
    page.goto(f"{world.url}/review")
    page.fill("#reviewer", "erin")
    world.admin.review_dataset(task_id, reviewer="dave", approve=False, comment="decided elsewhere")  # another reviewer, first
    card(page, task_id).locator("button.approve").click()
    error = card(page, task_id).locator(".error")
    error.wait_for()
    expect(error).not_to_be_empty()
    text = error.inner_text()
    assert "409" in text and "already reviewed by dave" in text
    assert card(page, task_id).locator("button.approve").is_disabled()
    after = world.admin.get_dataset(task_id)
    assert (after["qc_outcome"], after["reviewed_by"], after["review_comment"]) == ("rejected", "dave", "decided elsewhere")


def test_a_human_decision_survives_re_inspection(world):
    task_id = world.inspected_task()
    world.admin.review_dataset(task_id, reviewer="alice", approve=False, comment="frozen gripper")
    # An automatic re-inspection that would approve it: the score is updated, the decision is not.
    world.admin.dataset_inspected(task_id, score=0.99, outcome="approved", report={"checks": [], "score": 0.99})
    after = world.admin.get_dataset(task_id)
    assert (after["qc_outcome"], after["qc_score"], after["reviewed_by"]) == ("rejected", 0.99, "alice")
    # And a real re-inspection of the cached recording through the data flow keeps it too.
    from axon_dagster.services import data_flow as flow

    task = world.admin.get_task(task_id)
    staged = flow.StagedRecording(
        task_id=task_id, order_id=task["order_id"], batch_id=task["batch_id"], robot_id="robot-1", scene="warehouse",
        sub_scene="aisle_1", skills=("pick",), cache_path=after["cache_path"], dataset_digest=after["dataset_digest"],
        size_bytes=after["size_bytes"], requirements={"review_floor": 0.0, "auto_approve": 0.0}, stage_seconds=0.0,
    )  # requirements that would auto-approve anything
    _, outcome = flow.inspect_staged(world.admin, world.inspection.inspect, staged)
    assert outcome.value == "rejected"
    assert world.admin.get_dataset(task_id)["reviewed_by"] == "alice"


def test_review_api_refuses_bad_input_and_changes_nothing(world):
    task_id = world.inspected_task()
    before = world.admin.get_dataset(task_id)
    for kwargs, status, words in (
        ({"reviewer": "bad id!", "approve": True}, 422, "reviewer"),
        ({"reviewer": "alice", "approve": "maybe"}, 422, "approve"),
    ):
        with pytest.raises(ControlPlaneError) as err:
            world.admin.review_dataset(task_id, **kwargs)
        assert err.value.status_code == status and words in err.value.detail
    with pytest.raises(ControlPlaneError) as err:
        world.admin.dispose_rejected(task_id, "delete")  # not rejected: never disposed of
    assert err.value.status_code == 409 and "not rejected" in err.value.detail
    with pytest.raises(ControlPlaneError) as err:
        world.admin.dispose_rejected(task_id, "shred")
    assert err.value.status_code == 422 and "archive, delete" in err.value.detail
    with pytest.raises(ControlPlaneError) as err:
        world.admin.review_dataset("no-such-dataset", reviewer="alice", approve=True)
    assert err.value.status_code == 404
    assert world.admin.get_dataset(task_id) == before
    assert task_id in [i["dataset"]["dataset_id"] for i in world.admin.review_queue()]
