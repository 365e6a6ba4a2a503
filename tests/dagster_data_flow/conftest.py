"""Fixtures of the data flow's tests (the world they run in: staged_world.py)."""

from staged_world import instance, s3_bucket, s3_client, s3_env, s3_server, s3_world, world  # noqa: F401
