"""The demo's stand-in for separate machines: each robot's processes run as an OS user of their own
(``axon-robot-1``, ...) with a ``0700`` data directory, the cloud's (control-plane API, Dagster) as
``axon-cloud``. On one machine that is what makes the data path honest: the cloud cannot open a
path a robot reported, so a recording reaches it only over HTTP, through the control plane.

Users can be made only by root with ``useradd`` (CI runs as root). Elsewhere the demo says why and
runs every process as the invoking user (``mode="auto"``), or refuses (``mode="on"``).

Users are created once (``useradd --system``, no home, no login shell) and kept: later runs, and
runs side by side, reuse them. Every process is started with its user's uid and primary gid, the
supplementary group ``axon-demo`` only (never root's groups), umask ``077``, and ``HOME`` inside
its own directory.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ISOLATION_MODES = ("auto", "on", "off")
CLOUD_USER = "axon-cloud"
DEMO_GROUP = "axon-demo"  # every demo user; lets them through closed directories (see plan)
ROBOT_USER_PREFIX = "axon-robot-"
PRIVATE = 0o700


class IsolationUnavailable(RuntimeError):
    """``--isolation on`` where users cannot be created or cannot run the demo's programs."""


@dataclass(frozen=True)
class Account:
    """Who a process runs as. ``isolated=False``: the invoking user (no switch)."""

    name: str
    uid: int
    gid: int
    isolated: bool = True
    groups: tuple[int, ...] = ()  # supplementary groups (never the invoking user's)

    @classmethod
    def current(cls) -> "Account":
        uid, gid = os.getuid(), os.getgid()
        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:
            name = str(uid)
        return cls(name=name, uid=uid, gid=gid, isolated=False)

    def popen_kwargs(self) -> dict:
        """What :class:`subprocess.Popen` needs to start a process as this account."""
        if not self.isolated:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": list(self.groups), "umask": 0o077}

    def private_dir(self, path: Path) -> Path:
        """``path`` created (with its parents), owned by this account, mode ``0700``."""
        path.mkdir(parents=True, exist_ok=True)
        if self.isolated:
            os.chown(path, self.uid, self.gid)
        path.chmod(PRIVATE)
        return path


@dataclass
class IsolationPlan:
    """Who runs what: one account for the cloud, one per robot (all the invoking user when off)."""

    enabled: bool
    reason: str  # one sentence: why on, or why off
    cloud: Account
    robots: dict[str, Account] = field(default_factory=dict)

    def robot(self, robot_id: str) -> Account:
        """Who ``robot_id``'s processes run as (the invoking user for a robot not isolated)."""
        return self.robots.get(robot_id) or Account.current()

    def describe(self) -> dict:
        """The ``isolation`` object of the demo's ``--json``."""
        return {
            "enabled": self.enabled,
            "reason": self.reason,
            "cloud_user": self.cloud.name,
            "robot_users": {robot_id: account.name for robot_id, account in self.robots.items()},
        }


def robot_user(robot_id: str) -> str:
    """``robot-1`` -> ``axon-robot-1`` (a robot id is already a safe name; ``robot-`` is not repeated)."""
    return ROBOT_USER_PREFIX + robot_id.removeprefix("robot-")


def why_not_isolated() -> str | None:
    """Why this process cannot create the demo's users (None: it can)."""
    if os.name != "posix":
        return "per-robot OS users need a POSIX system"
    if os.geteuid() != 0:
        return f"not root (uid {os.geteuid()}): only root can create the per-robot users and switch to them"
    if shutil.which("useradd") is None:
        return "useradd is not installed (Debian: the passwd package)"
    return None


def plan(mode: str, robot_ids: list[str], workdir: Path, *, isolate_robots: set[str] | None = None,
         extra_paths: list[Path] = ()) -> IsolationPlan:
    """Decide who runs what. ``mode``: ``auto`` (isolate where possible, else say why and run as
    the invoking user), ``on`` (isolate or raise :class:`IsolationUnavailable`), ``off``.
    ``workdir``: where the users' directories go. ``isolate_robots``: the robots whose processes
    the demo starts (default: all). ``extra_paths``: more that the users must reach (tool caches).

    Every demo user is also in the group ``axon-demo``; a directory on the way to the workdir, the
    Python, the venv or the checkout that other users may not enter (a pyenv under a ``0700``
    ``/root``) gets an ACL entry letting that group through (``x`` only: nothing becomes listable)."""
    if mode not in ISOLATION_MODES:
        raise ValueError(f"unknown isolation mode {mode!r}; choose one of {', '.join(ISOLATION_MODES)}")
    me = Account.current()
    if mode == "off":
        return IsolationPlan(False, "isolation off (--isolation off): every process runs as " + me.name, me)
    try:
        problem = why_not_isolated()
        if problem is None:
            group = ensure_group(DEMO_GROUP)
            cloud = ensure_user(CLOUD_USER, group)
            wanted = set(robot_ids) if isolate_robots is None else set(isolate_robots)
            robots = {robot_id: ensure_user(robot_user(robot_id), group) for robot_id in robot_ids if robot_id in wanted}
            granted = let_group_through(group, [Path(workdir), *program_paths(), *extra_paths])
            problem = _cannot_run_as(cloud)
    except IsolationUnavailable as exc:
        problem = str(exc)
    if problem is not None:
        if mode == "on":
            raise IsolationUnavailable(f"--isolation on: {problem}")
        return IsolationPlan(False, f"no isolation: {problem}; every process runs as {me.name}", me)
    through = f" (ACL: group {DEMO_GROUP} may pass {', '.join(map(str, granted))})" if granted else ""
    return IsolationPlan(
        True,
        f"each robot's recorder and edge agent run as its own user with a 0700 data directory; the cloud as {CLOUD_USER}{through}",
        cloud,
        robots,
    )


def program_paths() -> list[Path]:
    """What the demo's users must reach to run the demo's programs: the Python (the interpreter and
    its prefix), the venv, the checkout of the packages (an editable install points there)."""
    import axon_dagster

    paths = [Path(sys.executable).resolve(), Path(sys.prefix), Path(sys.base_prefix), Path(axon_dagster.__file__).resolve().parent]
    try:
        import axon_edge

        paths.append(Path(axon_edge.__file__).resolve().parent)
    except ImportError:
        pass
    return paths


def closed_directories(paths: list[Path]) -> list[Path]:
    """The directories on the way to ``paths`` (and the directories among them) that other users
    may not enter (no ``o+x``), each once, outermost first."""
    closed: list[Path] = []
    for path in paths:
        path = Path(path).resolve()
        chain = [*reversed(path.parents), *([path] if path.is_dir() else [])]
        for directory in chain:
            if directory.exists() and not directory.stat().st_mode & 0o001 and directory not in closed:
                closed.append(directory)
    return closed


def let_group_through(group: grp.struct_group, paths: list[Path]) -> list[Path]:
    """Give ``group`` search (``x``) permission on every closed directory on the way to ``paths``
    (an ACL entry; the mode bits stay as they are). Returns the directories it changed."""
    closed = [d for d in closed_directories(paths) if not _group_may_pass(d, group.gr_name)]
    if not closed:
        return []
    setfacl = shutil.which("setfacl")
    if setfacl is None:
        raise IsolationUnavailable(
            f"other users may not enter {closed[0]} and setfacl is not installed to let the demo's users through "
            "(bash scripts/demo-deps.sh installs it)"
        )
    for directory in closed:
        done = subprocess.run([setfacl, "-m", f"g:{group.gr_name}:x", str(directory)], capture_output=True, text=True)
        if done.returncode != 0:
            raise IsolationUnavailable(f"setfacl on {directory} failed: {done.stderr.strip()}")
    return closed


def _group_may_pass(directory: Path, group: str) -> bool:
    getfacl = shutil.which("getfacl")
    if getfacl is None:
        return False
    done = subprocess.run([getfacl, "-cp", str(directory)], capture_output=True, text=True)
    return any(line.startswith(f"group:{group}:") and line.split(":")[2][2:3] == "x" for line in done.stdout.splitlines())


def ensure_group(name: str) -> grp.struct_group:
    """The system group ``name``, created when missing."""
    try:
        return grp.getgrnam(name)
    except KeyError:
        done = subprocess.run(["groupadd", "--system", name], capture_output=True, text=True)
        if done.returncode not in (0, 9):  # 9: created meanwhile by a run beside this one
            raise IsolationUnavailable(f"groupadd {name} failed ({done.returncode}): {done.stderr.strip()}")
        return grp.getgrnam(name)


def ensure_user(name: str, group: grp.struct_group) -> Account:
    """The system user ``name`` (its own primary group of the same name; also in ``group``),
    created when missing."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        nologin = shutil.which("nologin") or "/usr/sbin/nologin"
        done = subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent", "--shell", nologin, name],
            capture_output=True,
            text=True,
        )
        if done.returncode not in (0, 9):  # 9: created meanwhile by a run beside this one
            raise IsolationUnavailable(f"useradd {name} failed ({done.returncode}): {done.stderr.strip()}")
        entry = pwd.getpwnam(name)
    return Account(name=name, uid=entry.pw_uid, gid=entry.pw_gid, groups=(group.gr_gid,))


def _cannot_run_as(account: Account) -> str | None:
    """Why ``account`` cannot run this Python with the demo's packages (None: it can)."""
    code = "import axon_dagster.demo.sim, axon_edge, axon_dagster.client"
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=180, cwd="/", **account.popen_kwargs()
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"cannot start {sys.executable} as {account.name}: {exc}"
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["?"])[-1]
        return f"{account.name} cannot run {sys.executable} with the demo's packages ({tail}); make the checkout and venv readable"
    return None


def uid_of(pid: int) -> int | None:
    """The real uid a running process has (``/proc``), None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Uid:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None


def user_name(uid: int | None) -> str | None:
    if uid is None:
        return None
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


PROBE_CODE = """
import json, os, sys
out = {}
for path in sys.argv[1:]:
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            open(path, "rb").close()
        out[path] = "read"
    except PermissionError as exc:
        out[path] = "denied: " + (exc.strerror or "permission denied")
    except OSError as exc:
        out[path] = "error: " + str(exc)
print(json.dumps(out))
"""


def try_to_read(account: Account, paths: list[Path]) -> dict[str, str]:
    """As ``account``, try to list each directory / open each file: ``{path: "read" | "denied: ..." | "error: ..."}``."""
    import json

    done = subprocess.run(
        [sys.executable, "-c", PROBE_CODE, *map(str, paths)],
        capture_output=True, text=True, timeout=60, cwd="/", **account.popen_kwargs(),
    )
    if done.returncode != 0:
        raise RuntimeError(f"read probe as {account.name} failed: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout)
