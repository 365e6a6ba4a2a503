"""The dataset-search filters on the reviewer's queue (issue 8 item 3): ``GET /api/v1/review/queue``
and the ``/review`` page's GET filter form narrow the needs_review queue by scene, sub-scene, skill,
robot and since; a bad filter is refused by name (422) with the search service's own rules."""

from datetime import datetime, timedelta

import httpx
import pytest

from axon_dagster.client import ControlPlaneError


@pytest.fixture(scope="module")
def two(world) -> dict[str, str]:
    """A needs_review queue holding two datasets of different scenes, sub-scenes, skills and robots."""
    return {
        "kitchen": world.inspected_task(scene="kitchen", sub_scene="counter_1", skills=("pour",), robot="robot-k"),
        "garage": world.inspected_task(scene="garage", sub_scene="bay_2", skills=("weld",), robot="robot-g"),
    }


def queued(world, **filters) -> list[str]:
    return [i["dataset"]["dataset_id"] for i in world.admin.review_queue(**filters)]


def test_each_filter_returns_exactly_the_matching_datasets(world, two):
    kitchen, garage = two["kitchen"], two["garage"]
    assert queued(world) == [kitchen, garage]
    assert queued(world, scene="kitchen") == [kitchen]
    assert queued(world, scene="garage") == [garage]
    assert queued(world, sub_scene="bay_2") == [garage]
    assert queued(world, skill="pour") == [kitchen]
    assert queued(world, skill="weld") == [garage]
    assert queued(world, skill=["weld", "pour"]) == []  # every skill must match
    assert queued(world, robot_id="robot-k") == [kitchen]
    assert queued(world, robot_id="robot-g") == [garage]
    assert queued(world, scene="kitchen", robot_id="robot-g") == []
    assert queued(world, scene="", robot_id="") == [kitchen, garage]  # empty fields (a submitted blank form): no filter
    garage_created = world.admin.get_dataset(garage)["created_at"]
    assert queued(world, since=garage_created) == [garage]
    future = (datetime.fromisoformat(garage_created) + timedelta(days=1)).date().isoformat()
    assert queued(world, since=future) == []


def test_a_bad_filter_is_refused_by_name_and_changes_nothing(world, two):
    before = queued(world)
    for params, name in (
        ({"scene": "bad scene!"}, "scene"),
        ({"sub_scene": "x" * 1000}, "sub_scene"),
        ({"skill": "no skill?"}, "skill"),
        ({"robot_id": "robot/../1"}, "robot_id"),
        ({"since": "yesterday"}, "since"),
        ({"robot": "robot-k"}, "robot"),  # not a filter of the queue
        ({"status": "UPLOADED"}, "status"),  # the queue is needs_review by definition
    ):
        with pytest.raises(ControlPlaneError) as refused:
            world.admin.review_queue(**params)
        assert refused.value.status_code == 422 and name in refused.value.detail, (params, refused.value.detail)
    assert queued(world) == before
    # The page says so too, keeps the form, and shows no queue.
    page = httpx.get(f"{world.url}/review", params={"since": "yesterday"})
    assert page.status_code == 422
    assert "Bad filter" in page.text and "since" in page.text and 'id="filters"' in page.text
    assert "section class=\"card\"" not in page.text


def test_submitting_the_filter_form_shows_only_the_matching_dataset(world, two):
    playwright_sync = pytest.importorskip("playwright.sync_api")
    from .test_review_page import CHROMIUM_ARGS

    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(15_000)
            page.goto(f"{world.url}/review")
            shown = lambda: page.locator("section.card").evaluate_all("cs => cs.map(c => c.dataset.dataset)")
            assert shown() == [two["kitchen"], two["garage"]]
            page.fill("#filter-robot_id", "robot-g")
            page.click("#filter-button")
            page.wait_for_url("**/review?*robot_id=robot-g*")
            assert shown() == [two["garage"]]
            assert page.input_value("#filter-robot_id") == "robot-g"  # the filtered queue is this URL
        finally:
            browser.close()
