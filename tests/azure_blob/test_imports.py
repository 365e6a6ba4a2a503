import subprocess
import sys


def test_the_azure_backend_loads_the_sdk_only_when_a_store_is_built():
    """Robots import axon_dagster.storage without azure-storage-blob: neither the package nor the
    AzureBlobObjectStore class (lazy in storage/__init__.py) loads the SDK or the upload metrics."""
    code = (
        "import sys, axon_dagster.storage as s; s.object_store_from_url; cls = s.AzureBlobObjectStore; "
        "print(cls.__name__, sorted(m for m in ('azure', 'azure.storage.blob', 'boto3', 'axon_dagster.storage.metrics') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "AzureBlobObjectStore []"
