"""ROS 2 in our processes: the network discipline (DDS stays on 127.0.0.1, a domain per run) checked
on a live simulator node — its environment, its sockets, multicast memberships and the packets
on every non-loopback interface — and ROS 1 living beside ROS 2 in one process."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET

import pytest

from axon_dagster.recorder.ros2_env import LOOPBACK_PROFILE, loopback_env, reserve_domain_id

NS = {"f": "http://www.eprosima.com"}
LOOPBACK = "127.0.0.1"
DISCOVERY_MULTICAST = "239.255.0.1"


def rtps_ports(domain_id: int) -> range:
    """Every port RTPS derives from a domain id (PB 7400, DG 250; participant ports within it)."""
    base = 7400 + 250 * domain_id
    return range(base, base + 250)


def test_this_run_has_a_domain_of_its_own_on_loopback():
    env = os.environ
    domain = int(env["ROS_DOMAIN_ID"])
    assert domain != 0, "0 is every ROS 2 machine's default"
    assert env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert env["FASTDDS_DEFAULT_PROFILES_FILE"] == str(LOOPBACK_PROFILE)
    # the id is held: another run asking now gets another one
    probe = subprocess.run(
        [sys.executable, "-c", "from axon_dagster.recorder.ros2_env import reserve_domain_id; print(reserve_domain_id().domain_id)"],
        capture_output=True, text=True, timeout=60,
    )
    assert probe.returncode == 0, probe.stderr
    assert int(probe.stdout) != domain


def test_domain_reservations_are_exclusive_and_released(tmp_path):
    first = reserve_domain_id(tmp_path)
    second = reserve_domain_id(tmp_path)
    assert first.domain_id != second.domain_id
    held = first.domain_id
    first.release()
    again = [reserve_domain_id(tmp_path) for _ in range(100)]  # every id but second's
    assert held in {r.domain_id for r in again}
    with pytest.raises(RuntimeError, match="every ROS_DOMAIN_ID in 1..101 is held"):
        reserve_domain_id(tmp_path)
    for reservation in [second, *again]:
        reservation.release()
    with pytest.raises(ValueError, match="0..232"):
        loopback_env(300)


def test_the_fastdds_profile_allows_only_loopback_and_no_multicast():
    root = ET.parse(LOOPBACK_PROFILE).getroot()
    transports = root.findall(".//f:transport_descriptor", NS)
    assert len(transports) == 1
    assert transports[0].findtext("f:type", namespaces=NS) == "UDPv4"
    assert [a.text for a in transports[0].findall("f:interfaceWhiteList/f:address", NS)] == [LOOPBACK]
    participant = root.find(".//f:participant", NS)
    assert participant.get("is_default_profile") == "true"
    rtps = participant.find("f:rtps", NS)
    assert rtps.findtext("f:useBuiltinTransports", namespaces=NS) == "false"
    assert [t.text for t in rtps.findall("f:userTransports/f:transport_id", NS)] == [transports[0].findtext("f:transport_id", namespaces=NS)]
    assert not root.findall(".//f:metatrafficMulticastLocatorList/f:locator", NS)
    assert not root.findall(".//f:defaultMulticastLocatorList/f:locator", NS)
    addresses = {a.text for a in root.findall(".//f:locator/f:udpv4/f:address", NS)}
    assert addresses == {LOOPBACK}
    assert rtps.find("f:builtin/f:initialPeersList", NS) is not None


def _inet_sockets(pid: int) -> list[tuple[str, str, int]]:
    """(protocol, local address, local port) of every IPv4/IPv6 socket the process holds."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for proto in ("udp", "tcp", "udp6", "tcp6"):
        with open(f"/proc/{pid}/net/{proto}") as table:
            for line in table.readlines()[1:]:
                fields = line.split()
                if fields[9] not in inodes:
                    continue
                address, port = fields[1].split(":")
                if len(address) == 8:
                    address = socket.inet_ntoa(struct.pack("<I", int(address, 16)))
                found.append((proto, address, int(port, 16)))
    return found


class PacketWatch:
    """Every IPv4 UDP datagram seen on a non-loopback interface while active (needs CAP_NET_RAW)."""

    def __init__(self):
        try:
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
        except PermissionError:
            pytest.fail("watching the interfaces needs CAP_NET_RAW (run the suite as root, as CI does)", pytrace=False)
        self.sock.settimeout(0.2)
        self.datagrams: list[tuple[str, str, int, str, int]] = []  # (interface, src, sport, dst, dport)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                frame, (interface, _proto, _type, hatype, _addr) = self.sock.recvfrom(65535)
            except OSError:
                continue
            if interface == "lo" or hatype != 1 or len(frame) < 42 or frame[12:14] != b"\x08\x00":
                continue  # loopback, not Ethernet, or not IPv4
            ip = frame[14:]
            header = (ip[0] & 0x0F) * 4
            if ip[9] != 17:
                continue  # not UDP
            sport, dport = struct.unpack("!HH", ip[header : header + 4])
            self.datagrams.append((interface, socket.inet_ntoa(ip[12:16]), sport, socket.inet_ntoa(ip[16:20]), dport))


def test_a_live_ros2_node_listens_and_sends_on_loopback_only(start_ros2_sim, ros2_ready):
    from axon_dagster.recorder.ros2 import Ros2Recorder

    domain = int(os.environ["ROS_DOMAIN_ID"])
    with PacketWatch() as watch:
        sim = start_ros2_sim()
        with Ros2Recorder(sim.namespace, timeout_seconds=10, retry_attempts=3) as client:
            for _ in range(20):
                assert client.get_status().is_recording is False
            time.sleep(1.5)  # a lease announcement or two
            sockets = _inet_sockets(sim.proc.pid)
            environ = dict(
                item.split("=", 1) for item in open(f"/proc/{sim.proc.pid}/environ").read().split("\0") if "=" in item
            )
    # the node's effective settings: this run's domain, loopback discovery, our profile
    assert {k: environ.get(k) for k in loopback_env(domain)} == loopback_env(domain)
    # listening: every socket on an RTPS port of the domain is on 127.0.0.1, and discovery's
    # multicast port is not bound at all
    rtps = rtps_ports(domain)
    assert [s for s in sockets if s[2] in rtps], sockets
    assert all(address == LOOPBACK for _p, address, port in sockets if port in rtps), sockets
    assert not [s for s in sockets if s[2] == rtps.start], "the discovery multicast port is bound"
    # LOCALHOST adds an unwhitelisted UDP transport of its own (rmw_fastrtps): it may hold idle
    # send sockets on ephemeral ports; with nobody announcing a non-loopback locator they stay
    # silent, which the packet watch below checks
    assert all(address == LOOPBACK or port not in rtps for _p, address, port in sockets), sockets
    # no multicast group joined on any interface
    with open("/proc/net/igmp") as igmp:
        assert "0100FFEF" not in igmp.read(), "239.255.0.1 (DDS discovery) joined"
    # nothing of ours on the wire: no datagram to or from an RTPS port or the discovery group,
    # none from the node's own sockets
    own_ports = {port for proto, _a, port in sockets if proto.startswith("udp")}
    ours = [
        d for d in watch.datagrams
        if d[2] in rtps or d[4] in rtps or DISCOVERY_MULTICAST in (d[1], d[3]) or d[2] in own_ports
    ]
    assert ours == [], ours


def test_ros1_and_ros2_message_packages_live_side_by_side_in_one_process():
    code = (
        "import json\n"
        "from std_msgs.msg import String as Ros2String\n"
        "from axon_dagster.recorder.ros1_env import import_ros1\n"
        "rospy = import_ros1('rospy')\n"
        "Ros1String = import_ros1('std_msgs.msg').String\n"
        "from rosgraph_msgs.msg import Clock\n"
        "import std_msgs.msg\n"
        "print(json.dumps({'ros1': hasattr(Ros1String, '_md5sum'), 'ros2': hasattr(Ros2String, 'get_fields_and_field_types'),\n"
        "  'name_is_ros2': std_msgs.msg.String is Ros2String, 'clock_ros2': hasattr(Clock, 'get_fields_and_field_types')}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == '{"ros1": true, "ros2": true, "name_is_ros2": true, "clock_ros2": true}'
