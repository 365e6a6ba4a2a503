"""The bandwidth cap (token bucket + schedule), the priority queue, the probe and the metrics.
The cap test sends 50 MB over HTTP to moto's S3 server at 5 MB/s and must land within ±10 %."""

from __future__ import annotations

import logging
import sys
import threading
import time
from datetime import datetime

import pytest
from prometheus_client import REGISTRY, generate_latest

from axon_dagster.storage import metrics
from axon_dagster.storage.bandwidth import (
    BandwidthConfigError,
    BandwidthSchedule,
    ProbeError,
    ThroughputLog,
    RateLimiter,
    UploadQueue,
    parse_probe_output,
    probe_bandwidth,
)
from axon_dagster.storage.object_stores.s3_multipart import MultipartUploader

from .conftest import MiB, object_sha256

DAY = {"22:00-06:00": None, "06:00-22:00": 5_000_000}


def at(hh: int, mm: int = 0) -> datetime:
    return datetime(2026, 11, 26, hh, mm)


# ------------------------------------------------------------------------------------- schedule


def test_schedule_picks_the_window_of_the_local_time_including_across_midnight():
    s = BandwidthSchedule(DAY)
    assert s.rate_at(at(23)) is None and s.rate_at(at(0)) is None and s.rate_at(at(5, 59)) is None
    assert s.rate_at(at(6)) == 5_000_000 and s.rate_at(at(21, 59)) == 5_000_000
    partial = BandwidthSchedule({"09:00-17:00": 1_000_000}, default=2_000_000)
    assert partial.rate_at(at(8, 59)) == 2_000_000 and partial.rate_at(at(9)) == 1_000_000 and partial.rate_at(at(17)) == 2_000_000
    assert BandwidthSchedule({"00:00-24:00": 7}).rate_at(at(23, 59)) == 7


def test_schedule_parses_config_values():
    assert BandwidthSchedule.parse(None).rate_at(at(12)) is None
    assert BandwidthSchedule.parse("").rate_at(at(12)) is None
    assert BandwidthSchedule.parse(3_000_000).rate_at(at(12)) == 3_000_000
    assert BandwidthSchedule.parse("3000000").rate_at(at(12)) == 3_000_000
    assert BandwidthSchedule.parse('{"22:00-06:00": null, "06:00-22:00": 5000000}').rate_at(at(12)) == 5_000_000


@pytest.mark.parametrize(
    "value, match",
    [
        ({"6:00-22:00": 1}, "HH:MM-HH:MM"),
        ({"06:00-22:00": 1, "21:00-23:00": 2}, "overlap"),
        ({"22:00-06:00": 1, "05:00-07:00": 2}, "overlap"),
        ({"06:00-06:00": 1}, "empty"),
        ({"06:00-22:00": -5}, "positive"),
        ({"06:00-22:00": "fast"}, "positive"),
        ({"06:00-24:30": 1}, "HH:MM-HH:MM|24:00"),
        ("not json", "JSON"),
        ([1, 2], "positive"),
        (True, "positive"),
    ],
)
def test_bad_schedules_are_refused_clearly(value, match):
    with pytest.raises(BandwidthConfigError, match=match):
        BandwidthSchedule.parse(value)


def test_bad_bucket_and_queue_settings_are_refused():
    with pytest.raises(BandwidthConfigError, match="burst_seconds"):
        RateLimiter(1000, burst_seconds=0)
    with pytest.raises(BandwidthConfigError, match="max_active"):
        UploadQueue(max_active=0)
    with pytest.raises(BandwidthConfigError, match="priority"):
        with UploadQueue().slot(priority="high"):  # type: ignore[arg-type]
            pass


# ------------------------------------------------------------------------------------- rate limiter


class FakeClock:
    def __init__(self):
        self.t = 0.0
        self.slept = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s
        self.slept += s


def test_token_bucket_holds_the_rate_and_follows_the_schedule():
    clock = FakeClock()
    now = {"dt": at(12)}
    limiter = RateLimiter(DAY, clock=clock, sleep=clock.sleep, now=lambda: now["dt"], burst_seconds=0.05)
    for _ in range(100):
        limiter.acquire(100_000)  # 10 MB at 5 MB/s by day
    assert 1.99 <= clock.t <= 2.0  # the burst (0.05 s worth) is the only slack
    now["dt"] = at(23)
    clock.t += 1.0  # the schedule is re-read at most once a second
    before = clock.t
    for _ in range(100):
        assert limiter.acquire(100_000) == 0.0  # uncapped at night
    assert clock.t == before


def test_token_bucket_is_shared_by_threads():
    limiter = RateLimiter(2_000_000, burst_seconds=0.01)
    started = time.monotonic()
    threads = [threading.Thread(target=lambda: [limiter.acquire(50_000) for _ in range(10)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed <= 2.0  # 2 MB at 2 MB/s, whatever the number of threads (upper bound: slack for a busy machine)


# ------------------------------------------------------------------------------------- the cap over HTTP


def test_the_cap_holds_within_10_percent_on_a_50_mb_upload_at_5_mb_per_second(s3_client, s3_bucket, big_file, tmp_path, caplog):
    path, sha = big_file(size=50_000_000, seed=5)
    limiter = RateLimiter(5_000_000)
    wire: list[float] = []  # when each block went on the wire

    def on_event(name, info):
        if name == "part_bytes":
            wire.append(time.monotonic())

    uploader = MultipartUploader(s3_client, state_dir=tmp_path / "state", part_size=8 * MiB, concurrency=4, rate_limiter=limiter,
                                 queue=UploadQueue(), progress_interval=2.0, on_event=on_event)
    bytes_before = REGISTRY.get_sample_value("axon_upload_bytes_total")

    with caplog.at_level(logging.INFO, logger="axon_dagster.storage.upload_progress"):
        started = time.monotonic()
        result = uploader.upload_file(path, s3_bucket, "capped.bin", sha256=sha)
        elapsed = time.monotonic() - started

    # The cap is what goes on the wire: 50 MB from the first block to the last.
    rate = 50_000_000 / (wire[-1] - wire[0])
    assert 4_500_000 <= rate <= 5_500_000, f"{rate / 1e6:.2f} MB/s on the wire"
    # End to end (create, complete and verify included) the upload stays close to the cap.
    assert 50_000_000 / elapsed >= 4_000_000, f"{50 / elapsed:.2f} MB/s end to end"
    assert object_sha256(s3_client, s3_bucket, "capped.bin") == sha
    # Progress in the logs: bytes, rate and ETA.
    progress = [r.getMessage() for r in caplog.records if "ETA" in r.getMessage()]
    assert progress and "MB/s" in progress[0] and "/50.0 MB" in progress[0]
    # And in the metrics.
    assert REGISTRY.get_sample_value("axon_upload_bytes_total") - bytes_before == 50_000_000 == result.bytes_sent
    assert 0 < REGISTRY.get_sample_value("axon_upload_rate_bytes_per_second") <= 5_500_000
    exposed = generate_latest().decode()
    for name in ("axon_upload_bytes_total", "axon_upload_rate_bytes_per_second", "axon_upload_queue_length"):
        assert f"\n{name} " in exposed


def test_the_cap_is_shared_by_concurrent_uploads(s3_client, s3_bucket, big_file, tmp_path):
    """Two single-PUT uploads at once under a 3 MB/s cap take as long as one of twice the size."""
    from axon_dagster.storage import S3ObjectStore

    limiter = RateLimiter(3_000_000)
    store = S3ObjectStore(s3_bucket, client=s3_client, rate_limiter=limiter, upload_queue=UploadQueue(max_active=2), state_dir=tmp_path / "st")
    files = [big_file(size=3_000_000, seed=s, name=f"f{s}.bin") for s in (1, 2)]
    started = time.monotonic()
    threads = [threading.Thread(target=store.put_file, args=(p, f"shared/{p.name}")) for p, _ in files]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    assert 1.8 <= elapsed <= 4.0, elapsed  # 6 MB at 3 MB/s; one cap per upload would take 1 s
    assert sorted(store.list_keys("shared/")) == ["shared/f1.bin", "shared/f2.bin"]


# ------------------------------------------------------------------------------------- priority queue


def test_scarce_link_admits_uploads_by_priority_then_age():
    queue = UploadQueue(max_active=4, max_active_when_capped=1, is_scarce=lambda: True)
    order: list[str] = []
    release = threading.Event()

    def upload(label: str, priority: int, created_at: float, hold: bool = False):
        with queue.slot(priority, created_at, label):
            order.append(label)
            if hold:
                release.wait(5)

    first = threading.Thread(target=upload, args=("running", 0, 0.0, True))
    first.start()
    while queue.active() != ["running"]:
        time.sleep(0.001)
    waiting = [("low-old", 0, 1.0), ("high-new", 5, 3.0), ("high-old", 5, 2.0), ("mid", 2, 0.5)]
    threads = [threading.Thread(target=upload, args=w) for w in waiting]
    for t in threads:
        t.start()
    while queue.waiting < 4:
        time.sleep(0.001)
    assert REGISTRY.get_sample_value("axon_upload_queue_length") == 4
    release.set()
    for t in [first, *threads]:
        t.join(5)

    assert order == ["running", "high-old", "high-new", "mid", "low-old"]
    assert REGISTRY.get_sample_value("axon_upload_queue_length") == 0


def test_an_ample_link_runs_uploads_side_by_side_and_slots_are_reentrant():
    queue = UploadQueue(max_active=2, is_scarce=lambda: False)
    inside = threading.Barrier(2, timeout=5)

    def upload():
        with queue.slot(0):
            with queue.slot(0):  # a dataset's file inside the dataset's slot: no self-deadlock
                inside.wait()

    threads = [threading.Thread(target=upload) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert not inside.broken


# ------------------------------------------------------------------------------------- probe


def py(code: str) -> str:
    return f'{sys.executable} -c "{code}"'


def test_probe_command_reports_mbps_as_a_number_or_json():
    assert probe_bandwidth(command=py("print(42.5)")).upload_mbps == 42.5
    result = probe_bandwidth(command=py("print('{\\\"upload_mbps\\\": 7}')"))
    assert result.upload_mbps == 7.0 and result.source == "command"


@pytest.mark.parametrize(
    "command, match",
    [
        (py("print('fast')"), "not a number"),
        (py("print(-1)"), "non-negative"),
        (py("import sys; sys.exit(3)"), "exited 3"),
        ("/nonexistent/check_bandwidth", "not found"),
        (py("import time; time.sleep(5)"), "did not answer"),
    ],
)
def test_a_failing_probe_command_says_why(command, match):
    with pytest.raises(ProbeError, match=match):
        probe_bandwidth(command=command, timeout_seconds=1.0)


def test_probe_output_parsing():
    assert parse_probe_output(" 12\n") == 12.0
    with pytest.raises(ProbeError, match="upload_mbps"):
        parse_probe_output('{"down": 3}')
    with pytest.raises(ProbeError, match="printed nothing"):
        parse_probe_output("")


def test_measured_probe_uses_recent_throughput_only(tmp_path):
    log = ThroughputLog(tmp_path / "tp.json")
    now = time.time()
    log.record(10_000_000, 10.0, at=now - 7200)  # two hours ago: ignored
    log.record(2_000_000, 1.0, at=now - 10)
    log.record(2_000_000, 1.0, at=now - 5)
    result = probe_bandwidth(throughput_log=tmp_path / "tp.json", window_seconds=600)
    assert result.source == "measured" and result.upload_mbps == pytest.approx(16.0)
    with pytest.raises(ProbeError, match="no upload measured"):
        probe_bandwidth(throughput_log=tmp_path / "empty.json")
    with pytest.raises(ProbeError, match="no bandwidth probe configured"):
        probe_bandwidth()


def test_uploads_feed_the_measured_probe(s3_client, s3_bucket, big_file, tmp_path):
    path, sha = big_file(size=6 * MiB)
    uploader = MultipartUploader(s3_client, state_dir=tmp_path / "state", part_size=5 * MiB, rate_limiter=RateLimiter(None), queue=UploadQueue())
    uploader.upload_file(path, s3_bucket, "probe.bin", sha256=sha)
    result = probe_bandwidth(throughput_log=tmp_path / "state" / "throughput.json")
    assert result.upload_mbps > 1.0  # moto on localhost is far faster than 1 Mbps


def test_rate_meter_windows():
    clock = FakeClock()
    meter = metrics.RateMeter(window_seconds=2.0, clock=clock)
    meter.add(4_000_000)
    clock.t = 1.0
    meter.add(2_000_000)
    assert meter.rate() == 3_000_000
    clock.t = 5.0
    assert meter.rate() == 0
