"""Static checks of images/*.Dockerfile and .dockerignore (no Docker engine here to build them).

Multi-stage, pinned base tags, non-root final user matching what the charts run as, no secret
baked in, build-context sources present, ports matching the charts.
"""

from __future__ import annotations

import re

import pytest
import yaml
from chart_helpers import CHARTS_DIR, REPO

DOCKERFILES = {
    "axon-dagster": REPO / "images" / "axon-dagster.Dockerfile",
    "axon-edge": REPO / "images" / "axon-edge.Dockerfile",
    "axon-ray": REPO / "images" / "axon-ray.Dockerfile",
}
# uid:gid each image's final USER must have = what the charts' securityContexts run it as.
CHART_UIDS = {
    "axon-dagster": lambda: yaml.safe_load((CHARTS_DIR / "axon-cloud" / "values.yaml").read_text())["podSecurityContext"],
    "axon-edge": lambda: yaml.safe_load((CHARTS_DIR / "axon-edge" / "values.yaml").read_text())["podSecurityContext"],
    "axon-ray": lambda: {**yaml.safe_load((CHARTS_DIR / "axon-cloud" / "values.yaml").read_text())["podSecurityContext"],
                         **yaml.safe_load((CHARTS_DIR / "axon-cloud" / "values.yaml").read_text())["ray"]["podSecurityContext"]},
}
EXPOSED = {"axon-dagster": {"3030", "8000"}, "axon-edge": {"8090"}, "axon-ray": set()}


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#")))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def resolve(image: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), image)


# The official `ros` images have no versioned tags: distro + variant + Ubuntu codename is the
# most specific tag there is (digest pinning is a build-arg, see the Dockerfile). Rolling moves.
ROS_RELEASE_TAG = re.compile(r"^(?!rolling)[a-z]+-ros-(core|base)-(noble|jammy|focal)$")


def pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag or tag in ("", "latest"):
        return False
    return bool(re.search(r"\d", tag)) or (name == "ros" and bool(ROS_RELEASE_TAG.match(tag)))


def check_dockerfile(text: str) -> list[str]:
    problems = []
    ins = instructions(text)
    args = {}
    stages = []
    users = []
    for word, rest in ins:
        if word == "ARG" and "=" in rest:
            k, _, v = rest.partition("=")
            args[k.strip()] = v.strip().strip('"')
        elif word == "FROM":
            parts = rest.split()
            image = resolve(parts[0], args)
            stages.append(parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else image)
            users = []
            if image not in stages[:-1] and not pinned(image):
                problems.append(f"base image {image!r} is not pinned to a version tag or digest")
        elif word == "USER":
            users.append(rest)
        elif word in ("ENV", "ARG"):
            for m in re.finditer(r"(\w*(?:TOKEN|PASSWORD|SECRET|ACCESS_KEY|CREDENTIAL)\w*)\s*=\s*(\S+)", rest, re.I):
                problems.append(f"{word} bakes in a secret-looking value: {m.group(1)}")
    if len(stages) < 2:
        problems.append("not multi-stage")
    if not users:
        problems.append("final stage has no USER (would run as root)")
    else:
        uid = users[-1].split(":")[0]
        if uid in ("0", "root") or not uid.isdigit():
            problems.append(f"final USER {users[-1]!r} must be a numeric non-root uid")
    return problems


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_dockerfile_rules(image):
    assert check_dockerfile(DOCKERFILES[image].read_text()) == []


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_final_user_is_the_one_the_charts_run(image):
    users = [rest for word, rest in instructions(DOCKERFILES[image].read_text()) if word == "USER"]
    uid, _, gid = users[-1].partition(":")
    ctx = CHART_UIDS[image]()
    assert (int(uid), int(gid)) == (ctx["runAsUser"], ctx["runAsGroup"])


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_copy_sources_exist_and_ports_match(image):
    ins = instructions(DOCKERFILES[image].read_text())
    for word, rest in ins:
        if word == "COPY" and "--from=" not in rest:
            srcs = [s for s in rest.split()[:-1] if not s.startswith("--")]
            for src in srcs:
                if "*" not in src:  # globs (README.md*) may match nothing
                    assert (REPO / src).exists(), f"{image}: COPY source {src} missing"
    exposed = {p for word, rest in ins if word == "EXPOSE" for p in rest.split()}
    assert exposed == EXPOSED[image]


def test_edge_image_installs_ros2_from_the_wheels_and_builds_the_interface_package():
    text = DOCKERFILES["axon-edge"].read_text()
    ins = instructions(text)
    args = dict(r.split("=", 1) for w, r in ins if w == "ARG" and "=" in r)
    froms = [resolve(r.split()[0], args) for w, r in ins if w == "FROM"]
    # the ROS 2 wheels are cp311: every stage runs CPython 3.11
    assert froms and all(re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", f) for f in froms), froms
    runs = " ".join(r for w, r in ins if w == "RUN")
    assert "pip install '.[ros2]'" in runs and "-m axon_dagster.recorder.ros2_build" in runs and "load_srv_module()" in runs
    assert all(tool in runs for tool in ("gcc", "g++", "cmake", "ninja-build"))
    # the chart passes `args: [axon-edge, run]`: no ENTRYPOINT may swallow them
    assert not [r for w, r in ins if w == "ENTRYPOINT"]
    assert ("CMD", '["axon-edge", "run"]') in ins


def base_images(image: str) -> list[str]:
    ins = instructions(DOCKERFILES[image].read_text())
    args = dict(r.split("=", 1) for w, r in ins if w == "ARG" and "=" in r)
    return [resolve(r.split()[0], args) for w, r in ins if w == "FROM"]


def test_cloud_and_ray_images_run_python_3_11():
    # a `recorder.transport: ros2` config needs the cp311 ROS 2 wheels, and a Ray driver in a
    # Dagster pod must run the Ray cluster's Python minor version
    assert all(re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", f)
               for f in base_images("axon-dagster")), base_images("axon-dagster")
    assert all(re.fullmatch(r"rayproject/ray:[\d.]+-py311(@sha256:[0-9a-f]{64})?", f)
               for f in base_images("axon-ray")), base_images("axon-ray")


def test_dockerfile_check_bites():
    bad = "FROM python:latest\nENV AXON_ADMIN_TOKEN=abc\nRUN pip install .\n"
    problems = "\n".join(check_dockerfile(bad))
    assert "not pinned" in problems and "secret" in problems and "multi-stage" in problems and "USER" in problems
    assert check_dockerfile("FROM a:1 AS b\nFROM a:1\nUSER root\n") == ["final USER 'root' must be a numeric non-root uid"]
    assert not pinned("ros:rolling-ros-base-noble") and not pinned("ros:jazzy") and pinned("ros:jazzy-ros-base-noble")


def test_dockerignore_keeps_secrets_and_local_state_out():
    patterns = {l.strip() for l in (REPO / ".dockerignore").read_text().splitlines()
                if l.strip() and not l.startswith("#")}
    for required in ("**/.git", "**/.venv", ".tools", ".axon", "**/.env", "**/*.pem", "**/*.key", "**/kubeconfig*"):
        assert required in patterns, required
    for needed in ("pyproject.toml", "axon_dagster", "edge", "README.md"):
        assert needed not in patterns
