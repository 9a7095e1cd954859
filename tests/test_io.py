"""io.atomic_dir: the one way a folder is written in place (checkpoints, shards, Hub folders, posts, caches);
io.atomic_path's and atomic_dir's permissions."""

import os
import stat

import pytest
import torch

from dlroadmap.io import atomic_dir, atomic_path, write_text
from dlroadmap.train.checkpoint import save_weights


def leftovers(parent):
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_a_new_folder_appears_whole_and_replaces_the_old_one(tmp_path):
    target = tmp_path / "out"
    with atomic_dir(target) as tmp:
        assert not target.exists() and tmp.parent == tmp_path        # built beside the target, invisible meanwhile
        (tmp / "a.txt").write_text("one")
    assert (target / "a.txt").read_text() == "one"
    with atomic_dir(target) as tmp:
        (tmp / "b.txt").write_text("two")
        assert (target / "a.txt").exists()                             # the old folder stays until the new one is whole
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]       # replaced, not merged
    assert leftovers(tmp_path) == []


def test_a_failure_leaves_the_old_folder_and_no_temporary_one(tmp_path):
    target = tmp_path / "out"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("kept")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_dir(target) as tmp:
            (tmp / "half.txt").write_text("half")
            raise RuntimeError("disk full")
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"] and (target / "a.txt").read_text() == "kept"
    assert leftovers(tmp_path) == []


def test_a_path_of_the_wrong_kind_is_one_user_error_and_touches_nothing(tmp_path):
    """A folder given where a file goes (or a file where a folder goes, or a file in the middle of the path):
    one line naming it, raised before the block runs, and what was there is left as it was."""
    from dlroadmap.errors import UserError

    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "folder").mkdir()
    cases = [(atomic_dir, tmp_path / "notes.txt", "is a file"), (atomic_path, tmp_path / "folder", "is a folder"),
             (atomic_path, tmp_path / "notes.txt" / "x.npz", "a file stands where a folder"),
             (atomic_dir, tmp_path / "notes.txt" / "sub", "a file stands where a folder")]
    for writer, target, message in cases:
        with pytest.raises(UserError, match=message):
            with writer(target):
                raise AssertionError("the block must not run")
    assert (tmp_path / "notes.txt").read_text() == "mine" and list((tmp_path / "folder").iterdir()) == []
    assert leftovers(tmp_path) == []


def test_the_old_folder_survives_when_the_new_one_cannot_be_renamed_in(tmp_path, monkeypatch):
    import dlroadmap.io as io

    target = tmp_path / "out"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("kept")
    real = io.os.rename

    def refuse_new(src, dst):
        if str(src).endswith(".tmp"):
            raise OSError("no space left on device")
        return real(src, dst)

    monkeypatch.setattr(io.os, "rename", refuse_new)
    with pytest.raises(OSError, match="no space"):
        with atomic_dir(target) as tmp:
            (tmp / "b.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"] and (target / "a.txt").read_text() == "kept"
    assert leftovers(tmp_path) == []


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
def test_atomic_writes_get_the_permissions_a_plain_write_gets(tmp_path):
    # tempfile makes 0600 files and 0700 folders: written as they come, a report or an exported model could not be
    # read by anyone else (the model-server container runs as another user and mounts the folder read-only).
    (tmp_path / "plain.txt").write_text("x")
    (tmp_path / "plain").mkdir()
    write_text(tmp_path / "atomic.txt", "x")
    with atomic_dir(tmp_path / "atomic") as tmp:
        write_text(tmp / "inner.json", "{}")
        save_weights({"w": torch.ones(2)}, tmp / "model.safetensors")        # safetensors renames its own 0600 file in
    with atomic_path(tmp_path / "bundle.safetensors") as tmp:
        save_weights({"w": torch.ones(2)}, tmp)
    assert mode(tmp_path / "atomic.txt") == mode(tmp_path / "plain.txt") == mode(tmp_path / "atomic" / "inner.json")
    assert mode(tmp_path / "atomic" / "model.safetensors") == mode(tmp_path / "bundle.safetensors") == mode(tmp_path / "plain.txt")
    assert mode(tmp_path / "atomic") == mode(tmp_path / "plain")


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
def test_rewriting_a_file_keeps_the_mode_its_owner_gave_it(tmp_path):
    secret = tmp_path / "token.json"
    write_text(secret, "{}")
    secret.chmod(0o600)
    write_text(secret, '{"new": 1}')
    assert mode(secret) == 0o600 and secret.read_text() == '{"new": 1}'
