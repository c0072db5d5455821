"""Snapshots: what a reload hands the workers."""

from __future__ import annotations

import os
import stat

from oslo_config import cfg

from supervisor import config, snapshot


def load(tmp_path, text: str):
    path = tmp_path / "s.conf"
    path.write_text(text)
    return config.load(["--config-file", str(path)], conf=cfg.ConfigOpts())


DEMO = (
    "[DEFAULT]\ngraceful_shutdown_timeout = 7\n[supervisor]\nenabled_managers = demo\n"
    "[manager:demo]\nmanager = workers.demo.DemoManager\ngreeting = hi\n"
)


def test_take_holds_every_value_with_its_mutability(tmp_path):
    conf, specs = load(tmp_path, DEMO)
    snap = snapshot.take(conf, specs)
    assert snap["DEFAULT"]["graceful_shutdown_timeout"] == [7, True, False]
    assert snap["DEFAULT"]["host"][1] is False
    assert snap["manager:demo"]["greeting"] == ["hi", True, False]
    assert snap["manager:demo"]["manager"] == ["workers.demo.DemoManager", False, False]


def test_apply_mutable_only_leaves_the_rest(tmp_path):
    old, old_specs = load(tmp_path, DEMO)
    new, new_specs = load(tmp_path, DEMO.replace("hi", "hello").replace("7", "9") + "workers = 3\n")
    changes = snapshot.apply(old, snapshot.take(new, new_specs), ["manager:demo"], True)
    assert old["manager:demo"].greeting == "hello"
    assert old.graceful_shutdown_timeout == 7, "DEFAULT was not among the sections asked for"
    assert sorted(changes) == [
        "[manager:demo] greeting = 'hello' (was 'hi')",
        "[manager:demo] workers = 3 (was 1)",
    ]


def test_publish_only_when_values_change_and_share_the_generation(tmp_path):
    conf, specs = load(tmp_path, DEMO)
    store = snapshot.SnapshotStore(str(tmp_path / "snap.json"))
    assert store.generation == 0
    assert store.publish(snapshot.take(conf, specs))
    assert not store.publish(snapshot.take(conf, specs)), "unchanged: nothing to re-read"
    assert store.generation == 1
    pid = os.fork()
    if pid == 0:
        os._exit(0 if store.load()[0] == 1 else 1)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    new, new_specs = load(tmp_path, DEMO.replace("hi", "hello"))
    assert store.publish(snapshot.take(new, new_specs))
    generation, values = store.load()
    assert (store.generation, generation) == (2, 2)
    assert values["manager:demo"]["greeting"] == ["hello", True, False]
    assert stat.S_IMODE(os.stat(tmp_path / "snap.json").st_mode) == 0o600
    store.remove()
    assert not (tmp_path / "snap.json").exists()


def test_a_staged_snapshot_is_not_published_until_committed(tmp_path):
    conf, specs = load(tmp_path, DEMO)
    store = snapshot.SnapshotStore(str(tmp_path / "snap.json"))
    store.publish(snapshot.take(conf, specs))
    new, new_specs = load(tmp_path, DEMO.replace("hi", "hello"))
    store.stage(snapshot.take(new, new_specs))
    assert (store.generation, store.load()[1]["manager:demo"]["greeting"][0]) == (1, "hi")
    assert store.commit()
    assert (store.generation, store.load()[1]["manager:demo"]["greeting"][0]) == (2, "hello")


def test_a_secret_value_is_never_in_the_changes(tmp_path):
    conf, specs = load(tmp_path, DEMO)
    snap = snapshot.take(conf, specs)
    snap["manager:demo"]["password"] = ["s3cr3t-new", True, True]
    conf.register_opt(cfg.StrOpt("password", secret=True, mutable=True), group="manager:demo")
    conf.set_override("password", "s3cr3t-old", group="manager:demo")
    changes = snapshot.apply(conf, snap, ["manager:demo"], mutable_only=True)
    assert changes == ["[manager:demo] password = *** (changed)"]
    assert conf["manager:demo"].password == "s3cr3t-new"
