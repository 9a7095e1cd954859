"""`dlr hub`: a trained model in the Hugging Face Hub layout (`save`), uploaded to the Hub (`push`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dlroadmap.cli.common import app, default_out
from dlroadmap.ui import console

hub_app = typer.Typer(help="Hugging Face Hub: `dlr hub save RUN` writes config.json + model.safetensors + README.md; "
                           "`dlr hub push RUN --repo USER/NAME` uploads them.", no_args_is_help=True)
app.add_typer(hub_app, name="hub")


@hub_app.command()
def save(
    source: Path = typer.Argument(..., help="a run folder from `dlr run` (or a model bundle): p2.fnn.backprop, p2.cnn.architectures, p3.gen.vae, ..."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="folder to write [default: <$DLR_OUT or ./runs>/hub/<model name>]"),
) -> None:
    """Write the Hub layout (huggingface_hub's PyTorchModelHubMixin) and read it back to check it.

    Load it anywhere with `HubModel.from_pretrained(FOLDER)` (dlroadmap.deploy.hf_hub).
    """
    from dlroadmap.deploy.bundle import find_bundle
    from dlroadmap.deploy.hf_hub import load_hub_folder, save_hub_folder
    from dlroadmap.io import check_writable_dir

    bundle = find_bundle(source)
    target = out or default_out() / "hub" / bundle.name
    check_writable_dir(target.parent)
    save_hub_folder(bundle, target)
    load_hub_folder(target)                                        # read back by the mixin's own reader
    console.print(f"wrote {target} (config.json, model.safetensors, README.md); upload it: dlr hub push {source} --repo USER/NAME")


@hub_app.command()
def push(
    source: Path = typer.Argument(..., help="a run folder from `dlr run` (or a model bundle)"),
    repo: str = typer.Option(..., "--repo", "-r", help="the Hub repository, USER/NAME (created if it does not exist)"),
    private: bool = typer.Option(False, "--private", help="create the repository private"),
    token: Optional[str] = typer.Option(None, "--token", help="a Hugging Face token [default: HF_TOKEN or `hf auth login`]"),
) -> None:
    """Upload a trained model to the Hugging Face Hub (create_repo + upload_folder).

    The folder is written first under <$DLR_OUT or ./runs>/hub/<name>; with no network the command stops
    there with one line and the folder stays for a later push.
    """
    from dlroadmap.deploy.bundle import find_bundle
    from dlroadmap.deploy.hf_hub import push as push_folder, save_hub_folder
    from dlroadmap.errors import UserError

    if repo.count("/") != 1 or not all(repo.split("/")):
        raise UserError(f"--repo {repo!r} must be USER/NAME (e.g. alice/lenet5-mnist)")
    bundle = find_bundle(source)
    folder = save_hub_folder(bundle, default_out() / "hub" / bundle.name, repo_id=repo)
    console.print(f"pushed: {push_folder(folder, repo, private=private, token=token)}")
