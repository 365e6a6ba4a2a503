import subprocess
import sys


def test_the_storage_package_imports_no_heavy_dependency():
    """The edge agent imports axon_dagster.storage on small robots: no boto3, pyarrow or lance
    until an S3 store is built or a recording is read."""
    code = (
        "import sys, axon_dagster.storage as s; "
        "s.EdgeCache, s.LocalDirObjectStore, s.object_store_from_url; "
        "print(sorted(m for m in ('boto3', 'botocore', 'pyarrow', 'lance', 'dagster', 'daft', 'ray') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_upload_metrics_are_registered_only_once_the_uploader_is_used():
    code = (
        "import sys, axon_dagster.storage as s; s.EdgeCache; a = 'axon_dagster.storage.metrics' in sys.modules; "
        "s.RateLimiter; print(a, 'axon_dagster.storage.metrics' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False True"
