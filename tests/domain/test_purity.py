import json
import subprocess
import sys

FRAMEWORKS = ("dagster", "ray", "daft", "sqlalchemy", "fastapi", "httpx", "boto3", "lance", "pyarrow")


def test_domain_imports_no_framework_or_io_library():
    code = "import sys, json, axon_dagster.domain; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    loaded = set(json.loads(subprocess.check_output([sys.executable, "-c", code], text=True)))
    assert not loaded & set(FRAMEWORKS), loaded & set(FRAMEWORKS)
