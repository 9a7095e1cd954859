"""A serving image's Dockerfile and compose file checked the way a reviewer reads them: parsed, not grepped.

`dockerfile_checks` reads the instructions with dockerfile-parse (the final stage is what runs): a pinned base
image, a multi-stage build, a non-root USER, a HEALTHCHECK, an EXPOSEd port that the CMD's --port listens on,
and no secret baked into a layer (an ENV/ARG/LABEL with a secret-like name and a value, a copied key file).
`compose_checks` reads compose.yaml: ports published on 127.0.0.1 only, the models mounted read-only.
Each returns {check: value}; tests/test_docker_checks.py shows each check failing on the mistake it is for.
"""

from __future__ import annotations

SECRET_NAME = r"(?i)(token|secret|passw(or)?d|api[_-]?key|private[_-]?key|credential)"
SECRET_FILE = r"(?i)(^|/)(\.env|id_rsa|id_ed25519|\.netrc|\.pypirc|\.npmrc|[^/]*\.pem|[^/]*\.key)$"


def dockerfile_checks(text: str) -> dict[str, float]:
    """What a reviewer checks in a serving image's Dockerfile, read from its parsed instructions."""
    import json
    import re
    import shlex
    import tempfile

    from dockerfile_parse import DockerfileParser

    with tempfile.TemporaryDirectory() as tmp:                  # the parser keeps a file; ours stays untouched
        parser = DockerfileParser(path=tmp)
        parser.content = text
        structure, base, multistage = parser.structure, parser.baseimage, parser.is_multistage
    stages = [i for i, ins in enumerate(structure) if ins["instruction"] == "FROM"]
    final = structure[stages[-1]:] if stages else structure
    last = lambda name: next((ins["value"] for ins in reversed(final) if ins["instruction"] == name), None)  # noqa: E731
    user = (last("USER") or "root").split(":")[0]
    health = last("HEALTHCHECK") or "NONE"
    cmd = last("CMD") or "[]"
    cmd_args = json.loads(cmd) if cmd.startswith("[") else shlex.split(cmd)
    port = cmd_args[cmd_args.index("--port") + 1] if "--port" in cmd_args else None
    exposed = {p.split("/")[0] for ins in final if ins["instruction"] == "EXPOSE" for p in ins["value"].split()}
    secrets = 0
    for ins in structure:
        if ins["instruction"] in ("ENV", "ARG", "LABEL"):
            for item in shlex.split(ins["value"]):
                key, _, value = item.partition("=")
                secrets += bool(re.search(SECRET_NAME, key) and value)
        if ins["instruction"] in ("COPY", "ADD"):
            secrets += sum(bool(re.search(SECRET_FILE, src.rstrip("/"))) for src in shlex.split(ins["value"])[:-1] if not src.startswith("--"))
    name, _, tag = base.rpartition(":") if ":" in (base or "") else (base, "", "")
    return {"base_image_pinned": float(bool(tag) and tag != "latest" and "$" not in (base or "")),
            "multi_stage": float(multistage and len(stages) >= 2),
            "non_root_user": float(user not in ("root", "0")),
            "healthcheck": float(not health.upper().startswith("NONE")),
            "exposed_port_matches_cmd": float(port is not None and port in exposed),
            "secrets_in_layers": float(secrets)}


def compose_checks(text: str) -> dict[str, float]:
    import yaml

    services = (yaml.safe_load(text) or {}).get("services", {})
    ports = [str(p) for s in services.values() for p in s.get("ports", [])]
    mounts = [str(v) for s in services.values() for v in s.get("volumes", []) if ":/models" in str(v)]
    return {"compose_services": float(len(services)),
            "compose_ports_loopback_only": float(bool(ports) and all(p.startswith("127.0.0.1:") for p in ports)),
            "compose_models_read_only": float(bool(mounts) and all(m.endswith(":ro") for m in mounts)),
            "compose_healthchecks": float(sum("healthcheck" in s for s in services.values()))}
