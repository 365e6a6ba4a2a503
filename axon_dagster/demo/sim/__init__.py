"""The simulated Axon recorder (``axon-sim``): Axon v0.4's HTTP RPC (or the ROS services) over
synthetic sensors, writing what Axon writes. Cut by concern:

- :mod:`.recorder` — the state machine (:class:`SimulatedRecorder`); :mod:`.reports` its read-only
  RPCs; :mod:`.session` states and one recording session; :mod:`.faults` what it gets wrong;
  :mod:`.task_config` Axon's task_config checks; :mod:`.writer` what finish writes;
  :mod:`.callbacks` the start/finish callbacks;
- :mod:`.http_app` the HTTP RPC; :mod:`.ros_services`, :mod:`.ros1_node`, :mod:`.ros2_node` the ROS
  services; :mod:`.serving` running one in a thread; :mod:`.cli` the ``axon-sim`` process;
- :mod:`.synthetic` (Lance-era) and :mod:`.axon_mcap` (Axon v0.4 MCAP): the recordings' writers.
"""

from .faults import FaultsError, SimFaults
from .recorder import SimulatedRecorder
from .serving import bind_socket, serve_app_in_thread, serve_in_thread, url_of
from .session import IDLE, PAUSED, READY, RECORDING

__all__ = [
    "IDLE",
    "PAUSED",
    "READY",
    "RECORDING",
    "FaultsError",
    "SimFaults",
    "SimulatedRecorder",
    "bind_socket",
    "serve_app_in_thread",
    "serve_in_thread",
    "url_of",
]
