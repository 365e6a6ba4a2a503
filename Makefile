# The two commands a newcomer needs: `make demo` and `make test`. Both install what they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
DEMO_ARGS ?=
PYTEST_ARGS ?=

.PHONY: install system-deps demo-deps ros2-msgs demo dev test bench-control bench-fleet bench-upload bench-qc bench-inspect bench-rpc bench-ingest bench-e2e clean kind-up tilt

install: $(INSTALLED)

$(INSTALLED): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip uv
	# Bytecode compiled once here: with PYTHONDONTWRITEBYTECODE set (as on our CI machines) every process
	# would otherwise recompile what it imports (import dagster + lance: 4.8 s -> 1.5 s).
	$(VENV)/bin/uv pip install --python $(PY) -q --compile-bytecode -e '.[dev]'
	touch $@

# Debian packages and servers the tests use (PostgreSQL binaries, ...); idempotent.
system-deps:
	bash scripts/system-deps.sh
	bash scripts/ros1-deps.sh
	bash scripts/chromium-deps.sh
	bash scripts/prometheus-deps.sh
	bash scripts/azurite-deps.sh
	bash scripts/ros2-deps.sh
	bash scripts/demo-deps.sh

# As root: useradd and setfacl, so the demo runs each robot and the cloud as OS users of their own.
demo-deps:
	bash scripts/demo-deps.sh

# The ROS 2 interface package of the recorder's services (rosidl, from the .srv files), built into
# the venv's axon-build/ cache; a no-op while it is up to date (rebuilt when a .srv changes).
ros2-msgs: install
	bash scripts/ros2-deps.sh
	$(PY) -m axon_dagster.recorder.ros2_build

demo: install demo-deps $(if $(findstring ros2,$(DEMO_ARGS)),ros2-msgs)
	$(PY) -m axon_dagster.cli demo $(DEMO_ARGS)

dev: install ros2-msgs
	$(PY) -m axon_dagster.cli dev $(DEV_ARGS)

test: install system-deps ros2-msgs
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench-control: install system-deps
	$(PY) bench/control_plane.py

# Simulated robots (async) against the API on SQLite and PostgreSQL (fsync on), N = 100..2000
# (last lines: scale_out: two API processes vs one; max_robots: largest N held on PostgreSQL).
bench-fleet: install system-deps
	$(PY) bench/fleet.py $(BENCH_ARGS)

# The full QC suite vs a raw scan of the same columns (last line: ratio of times).
bench-qc: install
	$(PY) bench/qc_throughput.py

# QC of an ingested ~1 GB Axon MCAP (as bench-e2e records it) vs Lance reading the columns QC reads
# (last line: ratio of times; the recording is generated once into .axon/bench/).
bench-inspect: install
	$(PY) bench/qc_inspect.py $(BENCH_ARGS)

# Staging vs copytree, the cloud's uploader vs boto3, the robot's upload into the file:// store vs
# one plain PUT, then the robot's uploader through pre-signed part URLs vs boto3's upload_file
# (last line: ratio of the robot's upload throughput to boto3's).
bench-upload: install
	$(PY) bench/staging.py
	$(PY) bench/upload_throughput.py
	$(PY) bench/upload_local.py
	$(PY) bench/upload_presigned.py

# An Axon MCAP of >= 1 GB (zstd; images, clouds, IMU, joint states) ingested into Lance vs read
# and decoded with the mcap reader alone (last line: ratio of times; data under /tmp, deleted).
bench-ingest: install
	$(PY) bench/ingest.py $(BENCH_ARGS)

# Stop of recording -> published for a ~1 GB recording (robot and cloud as the demo runs them) vs
# the plain upload + the plain ingest of the same file (last line: ratio of times; data under /tmp).
bench-e2e: install demo-deps
	$(PY) bench/e2e.py $(BENCH_ARGS)

# Median get_status round trip over ROS 2, ROS 1 and Axon's HTTP RPC against the simulator
# (last line: ratio of ROS 2 to HTTP).
bench-rpc: install system-deps ros2-msgs
	$(PY) bench/recorder_rpc.py

clean:
	rm -rf .axon .pytest_cache

# Needs Docker, kind and Tilt (not available on the build machines; see docs/deploy.md).
kind-up:
	kind get clusters | grep -qx axon || kind create cluster --config kind-config.yaml

tilt: kind-up
	tilt up
