"""The OpenAPI 3.1 document of the agent's HTTP surface (served at ``GET /openapi.json``).

Written by hand (robots do not load FastAPI); ``tests/fuzz`` runs schemathesis against it, so a
route or an answer that drifts from this document fails there.
"""

from __future__ import annotations

from typing import Any

_ERROR = {"type": "object", "required": ["detail"], "properties": {"detail": {"type": "string"}}}
_RECORDER_ERROR = {
    "type": "object",
    "required": ["detail", "task_failed"],
    "properties": {"detail": {"type": "string"}, "task_failed": {"type": "boolean"}},
}
_ID = {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]*$"}
_STATUS = {"type": "string", "enum": ["PENDING", "READY", "ASSIGNED", "EXECUTING", "EXECUTED", "UPLOADED", "FAILED", "CANCELLED"]}
_TS = {"type": ["string", "null"]}
_TASK = {
    "type": "object",
    "required": ["task_id", "order_id", "batch_id", "scene", "skills", "status", "topics"],
    "properties": {
        "task_id": {"type": "string"},
        "order_id": {"type": "string"},
        "batch_id": {"type": "string"},
        "scene": {"type": "string"},
        "sub_scene": {"type": "string"},
        "skills": {"type": "array", "items": {"type": "string"}},
        "status": _STATUS,
        "duration_seconds": {"type": ["number", "null"]},
        "topics": {"type": "array", "items": {"type": "string"}},
        "priority": {"type": "integer"},
        "robot_id": {"type": ["string", "null"]},
        "data_collector_id": {"type": ["string", "null"]},
        "dataset_path": {"type": ["string", "null"]},
        "failure_reason": {"type": ["string", "null"]},
        "created_at": _TS,
        "updated_at": _TS,
    },
    "additionalProperties": True,
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    words = {
        401: "the robot's collector PIN is needed (from another machine)",
        403: "cross-site, not JSON, or an exposed agent without a PIN",
        404: "unknown task",
        409: "illegal transition or the recorder is busy",
        413: "request body over the limit",
        422: "invalid input",
        429: "too many wrong PINs",
    }
    out = {str(c): _json(_ERROR, words[c]) for c in codes}
    return out


_RECORDER_FAILURES = {
    "502": _json(_RECORDER_ERROR, "the recorder refused the command or answered nonsense"),
    "503": _json(_RECORDER_ERROR, "the recorder is unreachable"),
}
_GUARDED = (401, 403)
_WRITE = (401, 403, 413, 422)


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "axon-edge agent", "version": "1",
             "description": "Collector, teleop and operator routes of one robot's edge agent. See axon_edge/access.py for who may call."},
    "components": {"securitySchemes": {"collectorPin": {"type": "http", "scheme": "bearer"}}},
    "paths": {
        "/healthz": {"get": {"summary": "liveness", "security": [], "responses": {
            "200": _json({"type": "object", "required": ["status", "robot_id"],
                          "properties": {"status": {"const": "ok"}, "robot_id": {"type": "string"}}}, "alive")}}},
        "/tasks": {"get": {
            "summary": "this robot's tasks",
            "parameters": [{"name": "status", "in": "query", "required": False, "schema": {"type": "string"}}],
            "responses": {"200": _json({"type": "object", "required": ["tasks"],
                                        "properties": {"tasks": {"type": "array", "items": _TASK}}}, "tasks"),
                          **_errors(*_GUARDED, 422)}}},
        "/tasks/{task_id}": {"get": {
            "summary": "one task",
            "parameters": [{"name": "task_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": _json(_TASK, "the task"), **_errors(*_GUARDED, 404, 422)}}},
        "/tasks/{task_id}/pickup": {"post": {
            "summary": "a collector picks up a READY task",
            "parameters": [{"name": "task_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "requestBody": _body({"type": "object", "required": ["collector_id"], "additionalProperties": False,
                                  "properties": {"collector_id": _ID}}),
            "responses": {"200": _json(_TASK, "the task, ASSIGNED"), **_errors(*_WRITE, 404, 409), **_RECORDER_FAILURES}}},
        "/teleop": {"post": {
            "summary": "teleop start / stop (the same command a teleop device sends)",
            "requestBody": _body({"type": "object", "required": ["task_id", "command"], "additionalProperties": False,
                                  "properties": {"task_id": _ID, "command": {"type": "string", "enum": ["start", "stop"]}}}),
            "responses": {"200": _json(_TASK, "the task after the command"), **_errors(*_WRITE, 404, 409), **_RECORDER_FAILURES}}},
        "/callbacks/recording": {"post": {
            "summary": "the recorder's start/finish callbacks (bearer: the token this agent put in the task config)",
            "requestBody": _body({"type": "object", "required": ["task_id", "status"],
                                  "properties": {"task_id": {"type": "string"}, "status": {"type": "string"},
                                                 "dataset_path": {"type": "string"}, "output_path": {"type": "string"},
                                                 "error": {"type": "string"}}}),
            "responses": {"200": _json(_TASK, "the task"), **_errors(401, 404, 409, 413, 422)}}},
        "/collector/login": {"post": {
            "summary": "sign the collector page in with the robot's PIN (sets an HttpOnly cookie)",
            "security": [],
            "requestBody": _body({"type": "object", "required": ["pin"], "additionalProperties": False,
                                  "properties": {"pin": {"type": "string"}}}),
            "responses": {"200": _json({"type": "object", "properties": {"signed_in": {"const": True}}}, "signed in"),
                          **_errors(401, 403, 404, 413, 422, 429)}}},
        "/collector/live": {"get": {"summary": "live recording status for the page", "responses": {
            "200": _json({"type": "object"}, "live status"), **_errors(*_GUARDED)}}},
        "/status": {"get": {"summary": "recorder, outbox and sync health", "responses": {
            "200": _json({"type": "object", "required": ["robot_id", "recorder", "outbox", "sync", "tasks"]}, "status"),
            **_errors(*_GUARDED)}}},
        "/outbox": {"get": {"summary": "status events waiting for (or delivered to) the control plane", "responses": {
            "200": _json({"type": "object", "required": ["events"], "properties": {"events": {"type": "array", "items": {"type": "object"}}}},
                         "the outbox"), **_errors(*_GUARDED)}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "security": [], "responses": {
            "200": {"description": "text exposition format", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
    },
    "security": [{"collectorPin": []}],
}
