"""The Hugging Face Hub layout: written and read back by huggingface_hub's PyTorchModelHubMixin, offline."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from dlroadmap.deploy.bundle import read_bundle, save_bundle
from dlroadmap.deploy.hf_hub import HubModel, load_hub_folder, save_hub_folder
from dlroadmap.errors import UserError
from dlroadmap.io import write_json
from dlroadmap.models.families import SMALL_CNNS, build

CASES = [
    ("mlp", {"in_features": 784, "hidden": [32], "out_features": 10}, lambda: torch.rand(3, 1, 28, 28)),
    ("lenet5", {"num_classes": 10, **SMALL_CNNS["lenet5"][1]}, lambda: torch.rand(3, 1, 28, 28)),
    ("resnet_small", {"num_classes": 10}, lambda: torch.rand(3, 1, 28, 28)),
    ("gpt", {"vocab_size": 30, "block_size": 16, "n_layer": 1, "n_head": 2, "n_embd": 16}, lambda: torch.randint(0, 30, (3, 16))),
    ("vae", {"latent": 4, "hidden": 32}, None),
]


def trained_bundle(tmp_path, family, kwargs, metrics=None):
    """A bundle whose weights differ from any fresh initialisation, inside a run folder with a result.json."""
    torch.manual_seed(1)
    net = build(family, kwargs)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    run = tmp_path / "run"
    write_json(run / "result.json", {"node": "p9.test.node", "metrics": metrics or {"test_accuracy": 0.987}})
    save_bundle(run / "model", net, name=f"{family}-test", family=family, kwargs=kwargs, input_shape=[1, 28, 28],
                classes=[str(i) for i in range(10)], preprocessing={"mean": 33.3, "std": 78.6}, dataset="mnist5k",
                source={"node": "p9.test.node", "run_dir": str(run)})
    return read_bundle(run / "model"), net.eval()


@pytest.mark.parametrize("family, kwargs, make_input", CASES, ids=[c[0] for c in CASES])
def test_hub_layout_round_trip_is_exact(tmp_path, family, kwargs, make_input):
    bundle, net = trained_bundle(tmp_path, family, kwargs)
    folder = save_hub_folder(bundle, tmp_path / "hub")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".hub")]          # no temporary folder left behind
    config = json.loads((folder / "config.json").read_text())
    assert config["family"] == family and config["kwargs"] == kwargs
    loaded = HubModel.from_pretrained(folder, strict=True)                        # the mixin's own reader
    assert not loaded.training
    with torch.no_grad():
        if family == "vae":                                                       # forward samples z: compare mean and decoder
            x, z = torch.rand(3, 1, 28, 28), torch.randn(3, 4)
            expected, got = (net.encode(x)[0], net.decode(z)), (loaded.net.encode(x)[0], loaded.net.decode(z))
        else:
            x = make_input()
            expected, got = net(x), loaded(x)
    expected, got = (expected[0], got[0]) if isinstance(expected, tuple) else (expected, got)
    assert torch.equal(expected, got)


def test_model_card_metadata_and_metrics(tmp_path):
    bundle, _ = trained_bundle(tmp_path, "lenet5", {"num_classes": 10, **SMALL_CNNS["lenet5"][1]}, {"test_accuracy": 0.987, "test_loss": 0.05})
    folder = save_hub_folder(bundle, tmp_path / "hub", repo_id="alice/lenet5-mnist")
    text = (folder / "README.md").read_text()
    meta = yaml.safe_load(text.split("---")[1])
    assert meta["library_name"] == "dlroadmap" and meta["datasets"] == ["mnist5k"]
    assert {"dlroadmap", "pytorch", "lenet5", "p9.test.node"} <= set(meta["tags"])
    assert meta["metrics"] == ["test_accuracy", "test_loss"]
    assert "| test_accuracy | 0.987 |" in text and 'HubModel.from_pretrained("alice/lenet5-mnist")' in text
    # written again over itself: replaced whole, still readable
    save_hub_folder(bundle, folder)
    assert load_hub_folder(folder).family == "lenet5"


def test_dlr_hub_save_and_push_offline_is_one_line(cli, tmp_path, monkeypatch):
    bundle, _ = trained_bundle(tmp_path, "mlp", {"in_features": 784, "hidden": [16], "out_features": 10})
    code, out, err = cli("hub", "save", str(tmp_path / "run"), "--out", str(tmp_path / "card"))
    assert code == 0, out + err
    assert load_hub_folder(tmp_path / "card").family == "mlp"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, out, err = cli("hub", "push", str(tmp_path / "run"), "--repo", "alice/mlp")
    assert code == 2 and "Traceback" not in out + err
    line = [ln for ln in (out + err).splitlines() if ln.strip()]
    assert len(line) == 1 and "HF_HUB_OFFLINE is set: cannot upload to alice/mlp" in line[0] and "the folder is ready" in line[0], line
    # A real attempt over the network, to a port where nothing listens (no Hub, as on a machine without internet).
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)   # read once, at import
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "http://127.0.0.1:9")
    code, out, err = cli("hub", "push", str(tmp_path / "run"), "--repo", "alice/mlp", "--token", "hf_not_a_real_token")
    lines = [ln for ln in (out + err).splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and "cannot upload to alice/mlp" in lines[0] and "check the network" in lines[0], lines
    code, out, err = cli("hub", "push", str(tmp_path / "run"), "--repo", "no-slash")
    assert code == 2 and "must be USER/NAME" in out + err
    code, out, err = cli("hub", "save", str(tmp_path / "nothing"))
    assert code == 2 and "does not exist" in out + err


def test_reading_a_folder_that_is_not_one(tmp_path):
    with pytest.raises(UserError, match="not a Hub model folder"):
        load_hub_folder(tmp_path)


@pytest.mark.slow
def test_card_of_a_real_run_says_how_to_reproduce_it(tmp_path):
    """The card is built from the same facts as the run's post (dlroadmap.publish.run_facts)."""
    from dlroadmap import registry
    from dlroadmap.deploy.bundle import find_bundle
    from dlroadmap.publish import run_facts
    from dlroadmap.runner import run_id

    run_id(registry.load().get("p2.fnn.backprop"), tmp_path, quick=True, track="none", sets=["epochs=1"])
    folder = save_hub_folder(find_bundle(tmp_path / "p2.fnn.backprop"), tmp_path / "hub")
    card = (folder / "README.md").read_text()
    facts = run_facts(tmp_path / "p2.fnn.backprop")
    assert "## Reproduce it" in card and facts["command"] in card and facts["command"].endswith("--set epochs=1")
    assert "Rumelhart et al. 1986" in card and f"git checkout {facts['commit']}" in card
