import pytest

from axon_dagster.domain import Dataset, DatasetStatus, DomainError, IllegalTransitionError, QcOutcome, ReviewDecisionFinal


def inspected(outcome: QcOutcome) -> Dataset:
    ds = Dataset(dataset_id="t1", task_id="t1")
    ds.cached("/cache/t1.lance", "abc", 10)
    ds.record_inspection(0.5, outcome)
    return ds


def test_happy_path():
    ds = inspected(QcOutcome.APPROVED)
    assert ds.start_upload()
    assert ds.uploaded("s3://b/k.lance", "abc")
    assert ds.status is DatasetStatus.UPLOADED
    assert ds.uploaded("s3://b/k.lance", "abc") is False  # replay


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
        ds.uploaded("s3://b/k", "other")
    assert ds.status is DatasetStatus.UPLOADING
