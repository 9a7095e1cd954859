"""A trained model in the Hugging Face Hub layout, through huggingface_hub's own PyTorchModelHubMixin.

    <folder>/
        config.json         the constructor arguments of HubModel (family + kwargs, input shape, classes, ...)
        model.safetensors   the weights
        README.md           the model card: YAML metadata (library, tags, datasets, metrics) + the run's results

`HubModel.from_pretrained(folder_or_repo)` (the mixin's reader) rebuilds the identical network; `save_hub_folder`
converts a bundle from `dlr run`, and `push` uploads the folder with `create_repo` + `upload_folder`.
Nothing here is downloaded at run time: the tests read folders written locally, and push stops at the
network boundary with one line when the Hub cannot be reached.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard, ModelCardData, PyTorchModelHubMixin
from torch import nn

from dlroadmap.errors import UserError
from dlroadmap.io import atomic_dir
from dlroadmap.models.families import build
from dlroadmap.train.checkpoint import load_weights

CARD = """
---
{{ card_data }}
---

# {{ name }}

A `{{ family }}` network trained by [dlroadmap]({{ repo_url }}) (node `{{ node }}`, dataset `{{ dataset }}`).

```python
from dlroadmap.deploy.hf_hub import HubModel
model = HubModel.from_pretrained("{{ repo_id }}")   # or a local folder
```

Input shape {{ input_shape }}; preprocessing {{ preprocessing }}.

## Results of the run that trained it

| metric | value |
| --- | --- |
{% for k, v in metrics.items() %}| {{ k }} | {{ v }} |
{% endfor %}
{% if command %}
## Reproduce it

```bash
git checkout {{ commit }}
make install
{{ command }}
```
{% endif %}{% if papers %}
## Papers

{% for p in papers %}- {{ p }}
{% endfor %}{% endif %}
"""


class HubModel(nn.Module, PyTorchModelHubMixin, library_name="dlroadmap", tags=["dlroadmap", "pytorch"],
               repo_url="https://github.com/dlroadmap/dlroadmap", model_card_template=CARD):
    """One of our model families (models/families.py) with the Hub's save/load. The mixin records the
    constructor's arguments in config.json, so `from_pretrained` calls this __init__ again and loads the weights."""

    def __init__(self, family: str, kwargs: dict[str, Any], input_shape: list[int], classes: list[str],
                 preprocessing: dict[str, Any] | None = None, dataset: str | None = None, name: str | None = None):
        super().__init__()
        self.family, self.input_shape, self.classes = family, list(input_shape), list(classes)
        self.preprocessing, self.dataset, self.name = preprocessing or {}, dataset, name or family
        self.net = build(family, kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.net(*args, **kwargs)

    def generate_model_card(self, *args: Any, **kwargs: Any) -> ModelCard:
        """The mixin writes README.md from this: metadata the Hub indexes, then the run's metrics."""
        metrics: dict[str, float] = kwargs.pop("metrics", {})
        data = ModelCardData(library_name="dlroadmap", tags=["dlroadmap", "pytorch", self.family, *kwargs.pop("tags", [])],
                             datasets=[self.dataset] if self.dataset else None, metrics=sorted(metrics) or None, license="mit")
        return ModelCard.from_template(card_data=data, template_str=CARD, name=self.name, family=self.family, dataset=self.dataset,
                                       input_shape=self.input_shape, preprocessing=json.dumps(self.preprocessing),
                                       metrics={k: f"{v:.6g}" for k, v in metrics.items()},
                                       repo_url=self._hub_mixin_info.repo_url, **{"node": "?", "repo_id": "FOLDER", **kwargs})


def _run_card(bundle) -> dict[str, Any]:
    """What the card says about the run that wrote the bundle: its result.json's metrics once the run has finished
    (else the figures the run recorded in the bundle's source when it saved the model, e.g. test_accuracy), and,
    for a run of a registered node, the same reproducibility facts as its post (dlroadmap.publish.run_facts:
    the reproduce command, the commit, the papers)."""
    from dlroadmap.publish import run_facts

    source = bundle.config.get("source", {})
    run_dir = Path(source["run_dir"]) if source.get("run_dir") else None
    try:
        result = json.loads((run_dir / "result.json").read_text()) if run_dir else {}
    except (OSError, ValueError):
        result = {}
    numbers = result.get("metrics") or {k: v for k, v in source.items() if k not in ("node", "run_dir")}
    metrics = {k: float(v) for k, v in numbers.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    try:
        facts = run_facts(run_dir) if result else {}
    except (UserError, OSError, ValueError, KeyError):   # not a registered node's run: metrics only
        facts = {}
    return {"metrics": metrics, "node": result.get("node") or source.get("node", "?"), "command": facts.get("command"),
            "commit": facts.get("commit") or "COMMIT", "papers": [p["cite"] for p in facts.get("papers", [])]}


def from_bundle(bundle) -> HubModel:
    """A bundle from `dlr run` (family + kwargs + safetensors) as a HubModel with the same weights."""
    c = bundle.config
    model = HubModel(c["family"], c.get("kwargs", {}), c["input_shape"], c["classes"], c.get("preprocessing", {}), c.get("dataset"), c["name"])
    model.net.load_state_dict(load_weights(bundle.weights))    # the bundle's safetensors straight in (no second network)
    return model.eval()


def save_hub_folder(bundle, folder: str | os.PathLike, repo_id: str | None = None) -> Path:
    """Write the Hub layout of `bundle` into `folder`, atomically: built in a sibling temporary folder, then renamed."""
    folder = Path(folder)
    card = _run_card(bundle)
    with atomic_dir(folder) as tmp:
        from_bundle(bundle).save_pretrained(tmp, model_card_kwargs={**card, "repo_id": repo_id or str(folder),
                                                                     "tags": [card["node"]] if card["node"] != "?" else []})
    return folder


def load_hub_folder(folder: str | os.PathLike) -> HubModel:
    """Read a Hub-layout folder back with the mixin's own from_pretrained (offline: a local path)."""
    folder = Path(folder)
    if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
        raise UserError(f"{folder} is not a Hub model folder (config.json + model.safetensors); write one with `dlr hub save RUN`")
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):        # the mixin prints "Loading weights from local directory"
        return HubModel.from_pretrained(folder, strict=True)   # strict: a missing or extra weight is an error, not a warning


def push(folder: str | os.PathLike, repo_id: str, *, private: bool = False, token: str | None = None) -> str:
    """Upload a Hub-layout folder to `repo_id` (created if missing) and return the repository's URL. The network
    and the account are the only things that can fail here: each failure becomes one line naming what to do."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model", commit_message="dlroadmap: upload a trained model")
    except OfflineModeIsEnabled:
        raise UserError(f"HF_HUB_OFFLINE is set: cannot upload to {repo_id}; unset it to push (the folder is ready: {folder})") from None
    except HfHubHTTPError as e:
        status = getattr(e.response, "status_code", None)
        hint = "log in with `hf auth login` or set HF_TOKEN" if status in (401, 403) else "check the repository name and your rights to it"
        raise UserError(f"the Hugging Face Hub refused {repo_id} (HTTP {status}): {hint}; the folder is ready: {folder}") from None
    except Exception as e:
        # No network: huggingface_hub's HTTP client (httpx, or its fork httpx2) raises its own ConnectError, an OSError
        # in older clients; a malformed repo id is a ValueError. Anything else is a bug and keeps its traceback.
        network = isinstance(e, (OSError, ValueError)) or type(e).__module__.split(".")[0] in {"httpx", "httpx2", "requests", "urllib3"}
        if not network:
            raise
        raise UserError(f"cannot upload to {repo_id}: {(str(e).splitlines() or [type(e).__name__])[0][:160]}; check the network and the "
                        f"repo id (user/name); the folder is ready: {folder}") from None
    return str(url)

