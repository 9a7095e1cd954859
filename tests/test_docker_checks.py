"""tools.mlops.docker's checks: each one passes on the repository's files and fails on the mistake it exists for."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlroadmap.deploy.container_checks import compose_checks, dockerfile_checks

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
COMPOSE = (ROOT / "compose.yaml").read_text()


def test_the_repository_files_pass():
    d, c = dockerfile_checks(DOCKERFILE), compose_checks(COMPOSE)
    assert d == {"base_image_pinned": 1, "multi_stage": 1, "non_root_user": 1, "healthcheck": 1, "exposed_port_matches_cmd": 1,
                 "secrets_in_layers": 0}
    assert c["compose_ports_loopback_only"] == 1 and c["compose_models_read_only"] == 1 and c["compose_services"] == 2


@pytest.mark.parametrize("change, key, value", [
    (lambda t: t.replace("USER dlr\n", ""), "non_root_user", 0),
    (lambda t: t.replace("USER dlr\n", "USER 0\n"), "non_root_user", 0),
    (lambda t: t.replace("EXPOSE 8000", "EXPOSE 9000"), "exposed_port_matches_cmd", 0),
    (lambda t: t + "HEALTHCHECK NONE\n", "healthcheck", 0),
    (lambda t: t.replace("ARG BASE_IMAGE=python:3.11-slim-bookworm", "ARG BASE_IMAGE=python:latest"), "base_image_pinned", 0),
    (lambda t: t + 'ENV HF_TOKEN="hf_abc" OTHER=1\n', "secrets_in_layers", 1),
    (lambda t: t + "ARG DB_PASSWORD=hunter2\n", "secrets_in_layers", 1),
    (lambda t: t + "COPY .env id_rsa /home/dlr/\n", "secrets_in_layers", 2),
    (lambda t: t + "ARG API_KEY\n", "secrets_in_layers", 0),                    # a declared build arg with no value: nothing baked in
])
def test_each_check_catches_its_mistake(change, key, value):
    assert dockerfile_checks(change(DOCKERFILE))[key] == value


def test_compose_mistakes():
    assert compose_checks(COMPOSE.replace('"127.0.0.1:${DLR_PORT:-8000}:8000"', '"8000:8000"'))["compose_ports_loopback_only"] == 0
    assert compose_checks(COMPOSE.replace(":/models:ro", ":/models"))["compose_models_read_only"] == 0
