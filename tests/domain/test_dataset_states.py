import pytest

from axon_dagster.domain import Dataset, DatasetStatus, DomainError, IllegalTransitionError, QcOutcome, ReviewDecisionFinal


def inspected(outcome: QcOutcome) -> Dataset:
    ds = Dataset(dataset_id="t1", task_id="t1")
    ds.mark_cached("/cache/t1.lance", "abc", 10)
    ds.record_inspection(0.5, outcome)
    return ds


def test_happy_path():
    ds = inspected(QcOutcome.APPROVED)
    assert ds.start_upload()
    assert ds.mark_uploaded("s3://b/k.lance", "abc")
    assert ds.status is DatasetStatus.UPLOADED
    assert ds.mark_uploaded("s3://b/k.lance", "abc") is False  # replay


def test_rejected_dataset_is_never_uploaded():
    ds = inspected(QcOutcome.REJECTED)
    with pytest.raises(DomainError, match="not approved"):
        ds.start_upload()
    assert ds.status is DatasetStatus.INSPECTED


def test_cannot_skip_caching():
    ds = Dataset(dataset_id="t1", task_id="t1")
    with pytest.raises(IllegalTransitionError, match="RECORDED -> INSPECTED"):
        ds.record_inspection(1.0, QcOutcome.APPROVED)


def test_human_decision_survives_reinspection():
    ds = inspected(QcOutcome.NEEDS_REVIEW)
    ds.record_review("alice", approve=False, comment="blurry")
    assert ds.record_inspection(0.99, QcOutcome.APPROVED) is False
    assert ds.qc_outcome is QcOutcome.REJECTED and ds.qc_score == 0.99
    with pytest.raises(ReviewDecisionFinal):
        ds.record_review("bob", approve=True)


def test_upload_digest_must_match_cached_digest():
    ds = inspected(QcOutcome.APPROVED)
    ds.start_upload()
    with pytest.raises(DomainError, match="digest"):
        ds.mark_uploaded("s3://b/k", "other")
    assert ds.status is DatasetStatus.UPLOADING


def uploading() -> Dataset:
    ds = inspected(QcOutcome.APPROVED)
    ds.start_upload()
    return ds


def test_failed_upload_returns_to_inspected_with_its_reason():
    ds = uploading()
    assert ds.upload_failed("object store refused: 503") is True
    assert ds.status is DatasetStatus.INSPECTED
    assert ds.last_upload_error == "object store refused: 503"
    assert ds.upload_failed("object store refused: 503") is False  # replay: no-op
    assert ds.status is DatasetStatus.INSPECTED


def test_failed_upload_can_be_retried_and_success_clears_the_error():
    ds = uploading()
    ds.upload_failed("timeout")
    assert ds.start_upload()
    assert ds.last_upload_error == "timeout"  # still the last failure while the retry runs
    assert ds.mark_uploaded("s3://b/k.lance", "abc")
    assert ds.status is DatasetStatus.UPLOADED and ds.last_upload_error is None


def test_late_failure_report_never_un_uploads_a_dataset():
    ds = uploading()
    ds.mark_uploaded("s3://b/k.lance", "abc")
    with pytest.raises(DomainError, match="not uploading"):
        ds.upload_failed("late failure")
    assert ds.status is DatasetStatus.UPLOADED and ds.last_upload_error is None


@pytest.mark.parametrize("outcome", [QcOutcome.APPROVED, QcOutcome.REJECTED])
def test_upload_failure_is_refused_unless_uploading(outcome):
    ds = inspected(outcome)
    with pytest.raises(DomainError, match="not uploading"):
        ds.upload_failed("boom")
    assert ds.status is DatasetStatus.INSPECTED and ds.last_upload_error is None
    fresh = Dataset(dataset_id="t2", task_id="t2")
    with pytest.raises(DomainError, match="not uploading"):
        fresh.upload_failed("boom")


def test_a_different_failure_of_an_inspected_dataset_is_refused():
    ds = uploading()
    ds.upload_failed("first")
    with pytest.raises(DomainError, match="not uploading"):
        ds.upload_failed("second")
    assert ds.last_upload_error == "first"


def test_upload_failure_needs_a_reason():
    ds = uploading()
    with pytest.raises(DomainError, match="reason"):
        ds.upload_failed("")
    assert ds.status is DatasetStatus.UPLOADING
