"""Demo-only code: what `axon-dagster demo` / `dev` and the tests run instead of a real fleet.

- :mod:`.sim` — the simulated Axon recorder (``axon-sim``) and its synthetic recordings;
- :mod:`.fleet` — a simulated fleet on one machine (control plane, per robot a recorder and an edge agent);
- :mod:`.collectors` — simulated people beside the robots who press start and stop;
- :mod:`.driver` — the demo itself (an order through both flows, the results table);
- :mod:`.cli` — the ``axon-dagster demo`` and ``axon-dagster dev`` commands.

Production code never imports this package (a test in ``tests/architecture`` may hold it to that).
"""
