"""The Dagster code location: `dagster api grpc -m axon_dagster.defs` / `dagster dev -m axon_dagster.defs`.

Each area (``defs/<area>/``) exports a ``dg.Definitions`` of its jobs, sensors, schedules and assets;
they are merged here with the resources, which are built only when the code location loads
(``@dg.definitions``): importing an area reads no environment.
"""

from __future__ import annotations

import dagster as dg

from . import control_flow, data_flow, observability, recording, review, uploads

AREAS: tuple[dg.Definitions, ...] = (
    control_flow.defs,
    data_flow.defs,
    uploads.defs,
    review.defs,
    recording.defs,
    observability.defs,
)


def resources_for_location() -> dict[str, dg.ConfigurableResource]:
    """Every resource the areas use, from the code location's settings: loaded and validated once,
    here, so a bad variable or config key stops the location at start-up with its name."""
    from axon_dagster.observability.sensors import RunFailureAlertResource
    from axon_dagster.settings import load_code_location_settings

    from .resources import resources_from_env

    settings = load_code_location_settings()
    return {
        **resources_from_env(settings),
        "upload_grants": uploads.upload_grant_policy_from_env(settings.upload),
        "data_flow_policy": data_flow.data_flow_policy_from_env(settings.data_flow, settings.upload),
        "recording_policy": recording.recording_policy_from_env(settings.recording_policy),
        "review_policy": review.review_policy_from_env(settings.review),
        "run_failure_alert": RunFailureAlertResource.from_env(settings.alerts),
    }


def build_definitions(resources: dict | None = None) -> dg.Definitions:
    """The code location's definitions; ``resources`` replace the ones built from the environment."""
    return dg.Definitions.merge(*AREAS, dg.Definitions(resources={**resources_for_location(), **(resources or {})}))


# The sensors that move data (what the demo's driver ticks in place of the daemon).
DATA_SENSORS = ("upload_grant_sensor", "staged_dataset_sensor", "review_decision_sensor")


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
