"""``FakeRclpy``: a TEST DOUBLE for rclpy, which cannot be installed on these machines.

It emulates the part of rclpy's API that :class:`~axon_dagster.recorder.ros2.Ros2Recorder` uses,
with rclpy's observable behaviour where a client could get it wrong:

- the context: ``init`` twice raises, ``shutdown`` of a context that is not up raises, nodes
  cannot be created without one;
- services are matched by name on a shared graph (:class:`FakeGraph`); a request to a service
  nobody serves is lost (it never completes), as with DDS;
- a server answers from its own thread after an optional delay, and the *response is delivered
  through the client node's executor*: a future completes only while an executor spins the node;
- ``remove_pending_request`` makes a late response be ignored, as rclpy does;
- service types are built from our ``.srv`` files with rosidl's checks (unknown constructor
  arguments, field types; ``float64`` refuses ints, ``int32[]`` becomes ``array.array('i')``).

What it does not emulate: QoS, DDS discovery latency, callback groups, multiple contexts.
"""

from __future__ import annotations

import itertools
import threading
import time
from array import array
from types import SimpleNamespace
from typing import Any, Callable

from axon_dagster.recorder.srv import SrvField, SrvSpec, load_specs

# -- service types, rosidl-style -----------------------------------------------------------------


def _check(field: SrvField, value: Any) -> Any:
    if field.is_array:
        assert not isinstance(value, (str, bytes)), f"The '{field.name}' field must be a sequence"
        items = list(value)
        for item in items:
            _check(SrvField(field.name, field.type), item)
        return array("i", items) if field.type == "int32" else items
    kinds = {"bool": bool, "string": str, "int32": int, "float64": float}
    assert isinstance(value, kinds[field.type]) and not (field.type == "int32" and isinstance(value, bool)), (
        f"The '{field.name}' field must be of type '{kinds[field.type].__name__}'"
    )
    return value


def _message_class(srv: str, part: str, fields: tuple[SrvField, ...]) -> type:
    def __init__(self, **kwargs: Any) -> None:
        unknown = set(kwargs) - {f.name for f in fields}
        assert not unknown, f"Invalid arguments passed to constructor: {', '.join(sorted(unknown))}"
        for f in fields:
            setattr(self, f.name, kwargs.get(f.name, f.default()))

    def __setattr__(self, name: str, value: Any) -> None:
        by_name = {f.name: f for f in fields}
        if name not in by_name:
            raise AttributeError(f"{srv}_{part} has no field {name!r}")
        object.__setattr__(self, name, _check(by_name[name], value))

    def __repr__(self) -> str:
        return f"{srv}_{part}(" + ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields) + ")"

    return type(f"{srv}_{part}", (), {"__slots__": tuple(f.name for f in fields), "__init__": __init__,
                                      "__setattr__": __setattr__, "__repr__": __repr__})


def make_srv_module(specs: dict[str, SrvSpec] | None = None) -> SimpleNamespace:
    """Service types as rosidl would generate them (``GetStatus.Request``, ``GetStatus.Response``)."""
    types = {}
    for name, spec in (specs or load_specs()).items():
        types[name] = type(name, (), {
            "Request": _message_class(name, "Request", spec.request),
            "Response": _message_class(name, "Response", spec.response),
        })
    return SimpleNamespace(**types)


# -- futures -------------------------------------------------------------------------------------


class FakeFuture:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done = False
        self._cancelled = False
        self._result: Any = None
        self._exception: BaseException | None = None
        self._callbacks: list[Callable[["FakeFuture"], None]] = []

    def done(self) -> bool:
        return self._done

    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        self._finish(cancelled=True)

    def result(self) -> Any:
        if self._exception is not None:
            raise self._exception
        return self._result

    def exception(self) -> BaseException | None:
        return self._exception

    def set_result(self, result: Any) -> None:
        self._finish(result=result)

    def set_exception(self, exception: BaseException) -> None:
        self._finish(exception=exception)

    def add_done_callback(self, callback: Callable[["FakeFuture"], None]) -> None:
        with self._lock:
            if not self._done:
                self._callbacks.append(callback)
                return
        callback(self)

    def _finish(self, *, result: Any = None, exception: BaseException | None = None, cancelled: bool = False) -> None:
        with self._lock:
            if self._done:
                return
            self._done, self._cancelled, self._result, self._exception = True, cancelled, result, exception
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(self)


# -- the graph: who serves what, who publishes what ------------------------------------------------


class FakeServiceServer:
    """A service server in another 'process': answers from its own thread after ``delay_seconds``."""

    def __init__(self, srv_type: type, handler: Callable[[Any], Any], delay_seconds: float = 0.0):
        self.srv_type = srv_type
        self.handler = handler
        self.delay_seconds = delay_seconds
        self.alive = True
        self.requests = 0
        self._stopped = threading.Event()

    def serve(self, request: Any, reply: Callable[[Any], None]) -> None:
        self.requests += 1

        def run() -> None:
            if self._stopped.wait(self.delay_seconds):
                return  # died before answering
            response = self.handler(request)
            if self.alive:
                reply(response)

        threading.Thread(target=run, name="fake-ros2-server", daemon=True).start()

    def kill(self) -> None:
        self.alive = False
        self._stopped.set()


class FakeGraph:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.services: dict[str, FakeServiceServer] = {}
        self.publishers: dict[str, tuple[str, int]] = {}

    def serve(self, name: str, server: FakeServiceServer) -> FakeServiceServer:
        with self._lock:
            self.services[name] = server
        return server

    def kill(self, name: str) -> None:
        """The server process dies: it leaves the graph and never answers what it holds."""
        with self._lock:
            server = self.services.pop(name, None)
        if server is not None:
            server.kill()

    def lookup(self, name: str) -> FakeServiceServer | None:
        with self._lock:
            return self.services.get(name)

    def publish(self, topic: str, msg_type: str, count: int = 1) -> None:
        self.publishers[topic] = (msg_type, count)


# -- nodes, clients, executors ---------------------------------------------------------------------


class FakeClient:
    def __init__(self, node: "FakeNode", srv_type: type, srv_name: str):
        self.node, self.srv_type, self.srv_name = node, srv_type, srv_name
        self._pending: dict[int, FakeFuture] = {}
        self._sequence = itertools.count(1)
        self._lock = threading.Lock()
        self.ignored_responses = 0
        self.destroyed = False

    def service_is_ready(self) -> bool:
        return self.node.graph.lookup(self.srv_name) is not None

    def wait_for_service(self, timeout_sec: float | None = None) -> bool:
        # rclpy polls the graph until the service appears or the time is up
        deadline = None if timeout_sec is None else time.monotonic() + timeout_sec
        while self.node.rclpy.ok() and not self.service_is_ready():
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return self.service_is_ready()

    def call_async(self, request: Any) -> FakeFuture:
        if self.destroyed:
            raise RuntimeError("client has been destroyed")
        if not isinstance(request, self.srv_type.Request):
            raise TypeError(f"Request must be instance of {self.srv_type.Request}")
        future = FakeFuture()
        with self._lock:
            sequence = next(self._sequence)
            self._pending[sequence] = future
        server = self.node.graph.lookup(self.srv_name)
        if server is not None:  # else the request is lost, as on DDS with no matched server
            server.serve(request, lambda response: self.node.deliver(self, sequence, response))
        return future

    def remove_pending_request(self, future: FakeFuture) -> None:
        with self._lock:
            for sequence, pending in list(self._pending.items()):
                if pending is future:
                    del self._pending[sequence]

    def handle_response(self, sequence: int, response: Any) -> None:
        """Called by the executor spinning this client's node."""
        with self._lock:
            future = self._pending.pop(sequence, None)
        if future is None:
            self.ignored_responses += 1  # rclpy: "Ignoring unexpected response"
            return
        future.set_result(response)


class FakeNode:
    def __init__(self, rclpy: "FakeRclpy", name: str):
        self.rclpy, self.graph, self.name = rclpy, rclpy.graph, name
        self.clients: list[FakeClient] = []
        self.executor: "FakeSingleThreadedExecutor | None" = None
        self.destroyed = False

    def get_name(self) -> str:
        return self.name

    def create_client(self, srv_type: type, srv_name: str) -> FakeClient:
        client = FakeClient(self, srv_type, srv_name)
        self.clients.append(client)
        return client

    def destroy_client(self, client: FakeClient) -> bool:
        client.destroyed = True
        return True

    def destroy_node(self) -> None:
        for client in self.clients:
            self.destroy_client(client)
        self.destroyed = True

    def get_topic_names_and_types(self) -> list[tuple[str, list[str]]]:
        return [(topic, [msg_type]) for topic, (msg_type, _count) in sorted(self.graph.publishers.items())]

    def count_publishers(self, topic: str) -> int:
        return self.graph.publishers.get(topic, ("", 0))[1]

    def deliver(self, client: FakeClient, sequence: int, response: Any) -> None:
        # responses reach the client only through the executor spinning this node
        self.rclpy.inbox(self).put((client, sequence, response))


class FakeSingleThreadedExecutor:
    def __init__(self, rclpy: "FakeRclpy"):
        self.rclpy = rclpy
        self.nodes: list[FakeNode] = []
        self._shutdown = threading.Event()
        self.spinning = False

    def add_node(self, node: FakeNode) -> bool:
        node.executor = self
        self.nodes.append(node)
        return True

    def spin(self) -> None:
        import queue

        self.spinning = True
        try:
            while not self._shutdown.is_set() and self.rclpy.ok():
                for node in list(self.nodes):
                    try:
                        client, sequence, response = self.rclpy.inbox(node).get(timeout=0.01)
                    except queue.Empty:
                        continue
                    client.handle_response(sequence, response)
        finally:
            self.spinning = False

    def shutdown(self, timeout_sec: float | None = None) -> bool:
        self._shutdown.set()
        return True


class FakeRclpy:
    """Stands in for the ``rclpy`` module (pass it as ``Ros2Recorder(rclpy_module=...)``)."""

    def __init__(self, graph: FakeGraph | None = None):
        import queue

        self.graph = graph or FakeGraph()
        self._ok = False
        self.init_calls = 0
        self.shutdown_calls = 0
        self.nodes: list[FakeNode] = []
        self._inboxes: dict[int, "queue.Queue[Any]"] = {}
        self._queue_type = queue.Queue
        self.executors = SimpleNamespace(SingleThreadedExecutor=lambda **_kw: FakeSingleThreadedExecutor(self))

    def ok(self, *, context: Any = None) -> bool:
        return self._ok

    def init(self, *, args: Any = None, context: Any = None) -> None:
        if self._ok:
            raise RuntimeError("Context.init() must only be called once")
        self.init_calls += 1
        self._ok = True

    def shutdown(self, *, context: Any = None) -> None:
        if not self._ok:
            raise RuntimeError("rcl_shutdown already called on the given context")
        self.shutdown_calls += 1
        self._ok = False

    def create_node(self, node_name: str, **_kwargs: Any) -> FakeNode:
        if not self._ok:
            raise RuntimeError("rclpy.init() has not been called")
        node = FakeNode(self, node_name)
        self.nodes.append(node)
        return node

    def inbox(self, node: FakeNode):
        return self._inboxes.setdefault(id(node), self._queue_type())
