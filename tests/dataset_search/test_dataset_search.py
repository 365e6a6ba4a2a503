"""Dataset search on a seeded store of 1,200 datasets: the API, the CLI and a brute-force
filter over the seed agree exactly, page by page; bad filters are refused by name."""

from __future__ import annotations

import json
import random
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "edge"))
from edge_support import ADMIN_TOKEN, ControlPlaneServer  # noqa: E402

from axon_dagster.datasets_cli import main as datasets_main  # noqa: E402
from axon_dagster.control_plane.persistence import UnitOfWorkFactory, make_engine, upgrade  # noqa: E402
from axon_dagster.control_plane.persistence.bulk import insert_rows  # noqa: E402
from axon_dagster.control_plane.persistence.schema import BatchRow, DatasetRow, OrderRow, TaskRow  # noqa: E402

N = 1200
SCENES = {"warehouse": ["aisle_1", "aisle_2", ""], "kitchen": ["counter", ""]}
SKILLS = ["navigation", "pick_place", "pick", "wipe"]
STATUSES = ["CACHED", "INSPECTED", "UPLOADED"]
OUTCOMES = [None, "approved", "needs_review", "rejected"]
T0 = datetime(2026, 10, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    path = tmp_path_factory.mktemp("search") / "cp.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    rng = random.Random(7)
    seed = []
    orders, batches, tasks, datasets = [], [], [], []
    for o in range(12):
        scene = rng.choice(sorted(SCENES))
        sub = rng.choice(SCENES[scene])
        oid = f"ord{o}"
        orders.append(dict(order_id=oid, scene=scene, sub_scene=sub, skills=SKILLS, requirements={}, priority=0, created_by="",
                           created_at=T0, auto_approve_batches=True, recording_template="default"))
        bid = f"{oid}_b"
        batches.append(dict(batch_id=bid, order_id=oid, scene=scene, sub_scene=sub, skills=SKILLS, task_count=100,
                            duration_seconds=5.0, topics=[], created_at=T0, review_status="approved"))
        for t in range(N // 12):
            tid = f"{oid}_t{t}"
            skills = rng.sample(SKILLS, rng.randint(1, 2))
            robot = f"robot{rng.randint(1, 3)}"
            created = T0 + timedelta(hours=rng.randint(0, 24 * 60))
            status, outcome = rng.choice(STATUSES), rng.choice(OUTCOMES)
            tasks.append(dict(task_id=tid, order_id=oid, batch_id=bid, scene=scene, sub_scene=sub, skills=skills,
                              duration_seconds=5.0, topics=["/imu"], priority=0, status="EXECUTED", robot_id=None,
                              data_collector_id=f"c{rng.randint(1, 4)}", config_path=None, dataset_path=None,
                              failure_reason=None, created_at=created, updated_at=created, revision=len(tasks) + 1))
            datasets.append(dict(dataset_id=tid, task_id=tid, status=status, qc_outcome=outcome,
                                 qc_score=0.5 if outcome else None, cloud_uri=f"s3://b/{tid}" if status == "UPLOADED" else None,
                                 last_upload_error=f"store unreachable ({tid})" if status == "INSPECTED" and t % 5 == 0 else None,
                                 created_at=created, updated_at=created))
            seed.append(dict(id=tid, scene=scene, sub_scene=sub, skills=skills, status=status, outcome=outcome,
                             created=created, order=oid, robot=robot))
    engine = make_engine(url)
    uow = UnitOfWorkFactory(engine)()
    with uow.writing():
        s = uow.session
        insert_rows(s, OrderRow.__table__, orders)
        insert_rows(s, BatchRow.__table__, batches)
        insert_rows(s, TaskRow.__table__, tasks)
        insert_rows(s, DatasetRow.__table__, datasets)
        uow.commit()
    engine.dispose()
    server = ControlPlaneServer(url)
    server.start()
    yield url, server, seed
    server.stop()


def _expected(seed, scene=None, sub_scene=None, skills=(), status=None, outcome=None, since=None):
    out = [d for d in seed
           if (scene is None or d["scene"] == scene) and (sub_scene is None or d["sub_scene"] == sub_scene)
           and all(s in d["skills"] for s in skills) and (status is None or d["status"] == status)
           and (outcome is None or d["outcome"] == outcome) and (since is None or d["created"] >= since)]
    return [d["id"] for d in sorted(out, key=lambda d: (d["created"], d["id"]))]


CASES = [
    dict(),
    dict(scene="warehouse", sub_scene="aisle_1", skills=("navigation",), status="UPLOADED", since="2026-11-01"),
    dict(skills=("pick",)),  # "pick" must not match "pick_place"
    dict(skills=("pick_place", "navigation")),
    dict(scene="kitchen", outcome="needs_review"),
]


def _api_all(server, case):
    params = [(k, v) for k, v in case.items() if k != "skills"] + [("skill", s) for s in case.get("skills", ())]
    ids, offset = [], 0
    while True:
        page = httpx.get(f"{server.url}/api/v1/dataset-search", params=params + [("limit", 333), ("offset", offset)],
                         headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30).json()
        ids += [d["dataset_id"] for d in page["datasets"]]
        offset += 333
        if offset >= page["total"]:
            return ids, page["total"]


def _cli_all(url, case, capsys):
    argv = ["--database-url", url, "--json", "--limit", "5000"]
    for k, v in case.items():
        if k == "skills":
            for s in v:
                argv += ["--skill", s]
        else:
            argv += [f"--{k.replace('_', '-')}", v]
    assert datasets_main(argv) == 0
    page = json.loads(capsys.readouterr().out)
    return [d["dataset_id"] for d in page["datasets"]], page["total"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "all")
def test_api_and_cli_agree_with_the_seed(seeded, case, capsys):
    url, server, seed = seeded
    since = datetime.fromisoformat(case["since"]).replace(tzinfo=timezone.utc) if "since" in case else None
    expected = _expected(seed, **{**case, "since": since})
    assert expected, "every case matches some datasets, so an empty answer cannot pass"
    api_ids, api_total = _api_all(server, case)
    cli_ids, cli_total = _cli_all(url, case, capsys)
    assert api_ids == expected and api_total == len(expected)
    assert cli_ids == expected and cli_total == len(expected)


def test_the_narrow_case_is_not_empty_and_lineage_is_shown(seeded):
    url, server, seed = seeded
    page = httpx.get(f"{server.url}/api/v1/dataset-search", params={"skill": "pick", "limit": 1},
                     headers={"authorization": f"Bearer {ADMIN_TOKEN}"}).json()
    assert page["total"] == len(_expected(seed, skills=("pick",))) > 0
    assert set(page["datasets"][0]["lineage"]) == {"order_id", "batch_id", "task_id", "robot_id", "collector_id"}


def test_bad_filters_are_refused_by_name(seeded, capsys):
    url, server, _ = seeded
    h = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    for params, word in [({"status": "bogus"}, "status"), ({"since": "yesterday"}, "since"), ({"colour": "red"}, "colour"),
                         ({"limit": "0"}, "limit")]:
        r = httpx.get(f"{server.url}/api/v1/dataset-search", params=params, headers=h)
        assert r.status_code == 422 and word in r.json()["detail"], r.text
    assert datasets_main(["--database-url", url, "--status", "bogus"]) == 2
    assert "status" in capsys.readouterr().err


def test_status_filter_is_case_insensitive_as_in_the_issue_example(seeded, capsys):
    url, _, seed = seeded
    lower, lower_total = _cli_all(url, {"status": "uploaded"}, capsys)
    upper, upper_total = _cli_all(url, {"status": "UPLOADED"}, capsys)
    assert lower == upper and lower_total == upper_total == len(_expected(seed, status="UPLOADED")) > 0


def test_a_failed_upload_shows_its_error_in_the_search(seeded):
    url, server, seed = seeded
    page = httpx.get(f"{server.url}/api/v1/dataset-search", params={"status": "INSPECTED", "limit": 500},
                     headers={"authorization": f"Bearer {ADMIN_TOKEN}"}).json()
    errors = {d["dataset_id"]: d["last_upload_error"] for d in page["datasets"]}
    failed = {i: e for i, e in errors.items() if e}
    assert failed and len(failed) < len(errors)  # some failed, some never did
    assert all(e == f"store unreachable ({i})" for i, e in failed.items())
