"""Models in MLflow's model registry: register an exported model folder, and fetch one back to serve.

The tracking store is the platform's sqlite file (`<out>/mlflow.db`, artifacts in `<out>/mlartifacts`,
the same store `dlr run` logs to). Registering logs the exported folder (ONNX, safetensors, model
card) as the artifacts of a run in the experiment "dlroadmap-deploy" and creates a model version
pointing at them; serving fetches `models:/NAME/VERSION` (or `models:/NAME@alias`, `runs:/ID/model`)
with MLflow's own artifact download into a local folder, then loads it like any exported folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from dlroadmap.errors import UserError

EXPERIMENT = "dlroadmap-deploy"
URI_PREFIXES = ("models:/", "runs:/")


def default_tracking_uri(out: Path) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(out / 'mlflow.db').resolve()}"


def _client(tracking_uri: str):
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def register(model_dir: Path, name: str, tracking_uri: str) -> tuple[str, str]:
    """Log `model_dir` as run artifacts and register it as a new version of `name`: (run_id, version)."""
    from dlroadmap.deploy.core import NAME_RE

    if not NAME_RE.match(name):
        raise UserError(f"registered model name {name!r} is not allowed: use letters, digits, '.', '_' and '-'")
    client = _client(tracking_uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    if exp is None:
        root = Path(tracking_uri.removeprefix("sqlite:///")).parent if tracking_uri.startswith("sqlite:///") else Path.cwd()
        exp_id = client.create_experiment(EXPERIMENT, artifact_location=(root / "mlartifacts").resolve().as_uri())
    else:
        exp_id = exp.experiment_id
    run = client.create_run(exp_id, run_name=f"export {name}", tags={"dlroadmap.kind": "export"})
    client.log_artifacts(run.info.run_id, str(model_dir), artifact_path="model")
    client.set_terminated(run.info.run_id)
    try:
        client.create_registered_model(name)
    except Exception as e:  # noqa: BLE001 - MLflow raises RESOURCE_ALREADY_EXISTS for a second version
        if "RESOURCE_ALREADY_EXISTS" not in str(e) and "already exists" not in str(e):
            raise
    mv = client.create_model_version(name, source=f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    return run.info.run_id, str(mv.version)


def fetch(uri: str, tracking_uri: str, dst: Path) -> Path:
    """Download the artifacts behind a models:/ or runs:/ URI into dst; returns the local folder."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    if uri.startswith("runs:/") and uri.rstrip("/").count("/") == 1:
        uri = uri.rstrip("/") + "/model"  # runs:/ID means the exported folder logged under "model"
    dst.mkdir(parents=True, exist_ok=True)
    try:
        if uri.startswith("models:/"):
            # Resolve the version in this registry ourselves: MLflow would otherwise ask its default registry.
            uri = resolve_model_uri(_client(tracking_uri), uri)
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst), tracking_uri=tracking_uri)
    except MlflowException as e:
        raise UserError(f"cannot fetch {uri} from {tracking_uri}: {e.message.splitlines()[0]}") from None
    return Path(local)


def resolve_model_uri(client, uri: str) -> str:
    """models:/NAME/VERSION, models:/NAME@ALIAS or models:/NAME/latest -> the version's source (runs:/ID/model)."""
    spec = uri.removeprefix("models:/")
    if "@" in spec:
        name, alias = spec.split("@", 1)
        mv = client.get_model_version_by_alias(name, alias)
    else:
        name, _, version = spec.partition("/")
        if not version:
            raise UserError(f"{uri}: name a version (models:/{name}/1), an alias (models:/{name}@prod) or models:/{name}/latest")
        if version == "latest":
            versions = client.search_model_versions(f"name='{name}'")
            if not versions:
                raise UserError(f"no versions of registered model {name!r}")
            mv = max(versions, key=lambda v: int(v.version))
        else:
            mv = client.get_model_version(name, version)
    return mv.source
