"""Signed part URLs of the control plane's ingest endpoint: HMAC-SHA256 over every field, expiring,
and the signing key generated once (0600) for the embedded default."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from axon_dagster.storage.object_stores import PartSignatureError, load_signing_key, sign_part_url, verify_part_signature
from axon_dagster.storage.object_stores.signing import part_signature

KEY = b"s" * 32
FIELDS = dict(robot_id="robot-1", task_id="t-1", name="t-1.lance/data/0.lance", upload_id="abc123", number=3, offset=16777216, size=8388608,
              expires=2_000_000_000)


def test_a_signed_url_verifies() -> None:
    url = sign_part_url(KEY, base_url="https://cp.example/base/", **FIELDS)
    parts = urlsplit(url)
    assert parts.path == "/base/api/v1/edge/uploads/t-1/parts/3"
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert q["file"] == FIELDS["name"] and q["offset"] == "16777216"
    verify_part_signature(KEY, robot_id="robot-1", task_id="t-1", name=q["file"], upload_id=q["upload_id"], number="3", offset=q["offset"],
                          size=q["size"], expires=q["expires"], sig=q["sig"], now=FIELDS["expires"] - 1)


@pytest.mark.parametrize("field, value", [
    ("robot_id", "robot-2"), ("task_id", "t-2"), ("name", "t-1.lance/data/1.lance"), ("upload_id", "abc124"), ("number", 4), ("offset", 0),
    ("size", 8388609), ("expires", 2_000_000_001),
])
def test_every_field_is_signed(field: str, value: object) -> None:
    sig = part_signature(KEY, **FIELDS)
    with pytest.raises(PartSignatureError, match="bad signature") as exc:
        verify_part_signature(KEY, **{**FIELDS, field: value}, sig=sig, now=0)
    assert exc.value.expired is False


def test_another_key_or_a_malformed_signature_is_refused() -> None:
    sig = part_signature(KEY, **FIELDS)
    for key, bad in [(b"t" * 32, sig), (KEY, sig.upper()), (KEY, sig[:-1]), (KEY, ""), (KEY, None), (KEY, sig + "0")]:
        with pytest.raises(PartSignatureError, match="bad signature"):
            verify_part_signature(key, **FIELDS, sig=bad, now=0)  # type: ignore[arg-type]


def test_an_expired_url_is_refused_and_says_so() -> None:
    sig = part_signature(KEY, **FIELDS)
    verify_part_signature(KEY, **FIELDS, sig=sig, now=FIELDS["expires"])  # valid up to its expiry second
    with pytest.raises(PartSignatureError, match="expired") as exc:
        verify_part_signature(KEY, **FIELDS, sig=sig, now=FIELDS["expires"] + 1)
    assert exc.value.expired is True


@pytest.mark.parametrize("field, value", [
    ("robot_id", "../r"), ("task_id", "../t"), ("name", "../../etc/passwd"), ("name", "/abs"), ("name", "a\nb"), ("upload_id", "a\nb"),
    ("upload_id", ""), ("number", "0"), ("number", "x"), ("number", "-1"), ("offset", "-5"), ("offset", "0x10"), ("size", "1e3"), ("expires", "soon"),
])
def test_malformed_fields_are_refused(field: str, value: object) -> None:
    with pytest.raises(PartSignatureError, match="refused"):
        verify_part_signature(KEY, **{**FIELDS, field: value}, sig="0" * 64, now=0)  # type: ignore[arg-type]


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        part_signature(b"short", **FIELDS)
    with pytest.raises(ValueError, match="AXON_UPLOAD_SIGNING_KEY must be at least 32"):
        load_signing_key("too-short")


def test_the_configured_key_wins(tmp_path: Path) -> None:
    assert load_signing_key("c" * 40, tmp_path / "k") == b"c" * 40
    assert not (tmp_path / "k").exists()


def test_the_embedded_key_is_generated_once_and_private(tmp_path: Path) -> None:
    path = tmp_path / "db" / "upload-signing.key"
    keys: list[bytes] = []
    threads = [threading.Thread(target=lambda: keys.append(load_signing_key(None, path))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(keys)) == 1 and len(keys[0]) >= 32  # processes starting at once agree on one key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_signing_key("", path) == keys[0]  # an empty setting means unset
    assert [p.name for p in path.parent.iterdir()] == ["upload-signing.key"]  # no temp file left


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "upload-signing.key"
    load_signing_key(None, path)
    os.chmod(path, 0o644)
    with pytest.raises(ValueError, match="chmod 600"):
        load_signing_key(None, path)
    os.chmod(path, 0o600)
    path.write_text("short\n")
    with pytest.raises(ValueError, match="fewer than 32"):
        load_signing_key(None, path)
    with pytest.raises(ValueError, match="set AXON_UPLOAD_SIGNING_KEY"):
        load_signing_key(None, None)
