"""io.atomic_dir: the one way a folder is written in place (checkpoints, shards, Hub folders, posts, caches)."""

import pytest

from dlroadmap.io import atomic_dir


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
