"""The resources manager's own logic: driver by option, failures, what it answers.

`FakeResourcesDb` below is a STAND-IN for the manager's db driver (`workers.resources_db`, its
own tests in test_resources_db.py): only the two calls this manager makes, kept in memory. The
real database path is a functional test.
"""

from __future__ import annotations

import datetime
import json
import logging

import pytest
from oslo_config import cfg

from supervisor.config import register_static_opts
from supervisor.manager import DEFAULT_DB_DRIVER
from workers import resources
from workers.drivers.base import ResourcesDriver
from workers.resources import ResourcesManager

if "host" not in cfg.CONF:
    register_static_opts(cfg.CONF)

SECTION = "manager:resources-test"


class FakeResourcesDb:
    """Stand-in for the db API: host_resources_add / host_resources_get, in memory."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def host_resources_add(self, host: str, sample: dict) -> None:
        self.rows.append({"id": len(self.rows) + 1, "host": host, **sample})

    def host_resources_get(self, host: str):
        rows = [row for row in self.rows if row["host"] == host]
        return FakeRow(max(rows, key=lambda row: (row["sampled_at"], row["id"]))) if rows else None


class FakeRow:
    """A row as the db API returns it: row["key"] and dict(row.items())."""

    def __init__(self, values: dict) -> None:
        self._values = values

    def __getitem__(self, key):
        return self._values[key]

    def items(self):
        return self._values.items()


class BrokenDriver(ResourcesDriver):
    name = "broken"

    def sample(self):
        raise OSError(5, "Input/output error", "/proc/loadavg")


class FixedDriver(ResourcesDriver):
    name = "fixed"

    def sample(self):
        return {
            "cpu_count": 4,
            "load_1": 0.5,
            "load_5": 0.25,
            "load_15": 0.125,
            "memory_total": 8 * 2**30,
            "memory_available": 3 * 2**30,
            "disks": [{"mount": "/", "total": 100, "used": 40}],
        }


@pytest.fixture
def make_manager():
    """A ResourcesManager on host node-1 with the stand-in db and the given options."""

    cfg.CONF.register_opts(ResourcesManager.opts, group=SECTION)

    def make(db=None, **options):
        for name, value in options.items():
            cfg.CONF.set_override(name, value, group=SECTION)
        manager = ResourcesManager(host="node-1", service_name=SECTION.split(":", 1)[1])
        manager.db = FakeResourcesDb() if db is None else db
        return manager

    yield make
    for opt in ResourcesManager.opts:
        cfg.CONF.clear_override(opt.name, group=SECTION)


def test_options_and_defaults(make_manager):
    manager = make_manager()
    assert manager.configuration.driver == "workers.drivers.psutil_driver.PsutilDriver"
    assert manager.configuration.sample_interval == 60
    assert manager.configuration.mounts == []
    opts = {opt.name: opt for opt in ResourcesManager.opts}
    assert opts["sample_interval"].mutable


@pytest.mark.parametrize(
    "path, name",
    [
        ("workers.drivers.psutil_driver.PsutilDriver", "psutil"),
        ("workers.drivers.proc_driver.ProcDriver", "proc"),
    ],
)
def test_the_driver_option_chooses_the_driver_and_each_sample_is_stored(make_manager, path, name):
    manager = make_manager(driver=path, mounts=["/"])
    manager.init_host()
    assert manager.driver.name == name
    assert manager.driver.mounts == ("/",)
    manager.periodic_tasks(context=None)
    [row] = manager.db.rows
    assert row["host"] == "node-1"
    assert row["driver"] == name
    assert row["sampled_at"].tzinfo is None, "naive UTC, as the db API takes it"
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    assert abs(now - row["sampled_at"]) < datetime.timedelta(seconds=5)
    assert type(row["cpu_count"]) is int and type(row["load_1"]) is float
    assert isinstance(row["disks"], str), "disks are stored as JSON text"
    assert [disk["mount"] for disk in json.loads(row["disks"])] == ["/"]


def test_a_driver_that_is_no_resources_driver_is_refused(make_manager):
    manager = make_manager(driver="json.JSONDecoder")
    with pytest.raises(TypeError, match="not a ResourcesDriver"):
        manager.init_host()


@pytest.mark.parametrize("db_driver", [None, "", DEFAULT_DB_DRIVER])
def test_its_db_is_its_own_driver_unless_the_section_names_another(make_manager, db_driver):
    make_manager()  # registers the section's options
    manager = ResourcesManager(host="node-1", db_driver=db_driver, service_name="resources-test")
    assert repr(manager.db) == f"<lazy module {resources.DB_DRIVER!r}>"
    assert resources.DB_DRIVER == "workers.resources_db"
    other = ResourcesManager(host="node-1", db_driver=__name__, service_name="resources-test")
    assert repr(other.db) == f"<lazy module {__name__!r}>"


def test_init_host_needs_a_db(make_manager):
    manager = make_manager()
    del manager.db
    with pytest.raises(RuntimeError, match="no db"):
        manager.init_host()


def test_sample_interval_sets_the_spacing_and_reset_applies_a_new_one(make_manager):
    manager = make_manager(sample_interval=7)
    manager.init_host()
    assert manager._periodic_spacing["sample"] == 7
    cfg.CONF.set_override("sample_interval", 3, group=SECTION)
    manager.reset()
    assert manager._periodic_spacing["sample"] == 3
    assert ResourcesManager._periodic_spacing["sample"] == 60, "the class keeps its default"


def test_a_failing_driver_is_one_log_line_and_the_loop_goes_on(make_manager, caplog):
    manager = make_manager(driver=f"{__name__}.BrokenDriver", sample_interval=1)
    manager.init_host()
    with caplog.at_level(logging.DEBUG):
        idle = manager.periodic_tasks(context=None)
    assert 0 < idle <= 1, "the task is scheduled again"
    assert manager.db.rows == []
    errors = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(errors) == 1
    message = errors[0].getMessage()
    assert "\n" not in message and errors[0].exc_info is None
    assert "broken driver failed to sample node-1" in message
    assert "Input/output error" in message
    # A later run with a working driver stores again.
    manager.driver = FixedDriver()
    manager.sample(None)
    assert len(manager.db.rows) == 1


def test_get_host_resources_is_the_latest_sample_as_plain_json(make_manager):
    manager = make_manager(driver=f"{__name__}.FixedDriver")
    manager.init_host()
    assert manager.get_host_resources(None) is None
    manager.sample(None)
    first = manager.db.rows[0]["sampled_at"]
    manager.driver.sample = lambda: {**FixedDriver().sample(), "load_1": 2.0}
    manager.sample(None)
    answer = manager.get_host_resources(None)
    assert json.loads(json.dumps(answer)) == answer
    assert answer == {
        "host": "node-1",
        "sampled_at": manager.db.rows[1]["sampled_at"].replace(tzinfo=datetime.UTC).isoformat(),
        "driver": "fixed",
        "cpu_count": 4,
        "load_1": 2.0,
        "load_5": 0.25,
        "load_15": 0.125,
        "memory_total": 8 * 2**30,
        "memory_available": 3 * 2**30,
        "disks": [{"mount": "/", "total": 100, "used": 40}],
    }
    assert answer["sampled_at"].endswith("+00:00")
    assert manager.db.rows[1]["sampled_at"] >= first


def test_get_host_resources_of_another_host(make_manager):
    db = FakeResourcesDb()
    manager = make_manager(db=db, driver=f"{__name__}.FixedDriver")
    manager.init_host()
    manager.sample(None)
    db.host_resources_add(
        "node-2",
        {
            "sampled_at": datetime.datetime(2026, 1, 2, 3, 4, 5),
            "driver": "proc",
            "cpu_count": 64,
            "load_1": 1.0,
            "load_5": 1.0,
            "load_15": 1.0,
            "memory_total": 2**40,
            "memory_available": 2**39,
            "disks": "[]",
        },
    )
    other = manager.get_host_resources(None, host="node-2")
    assert other["host"] == "node-2"
    assert other["sampled_at"] == "2026-01-02T03:04:05+00:00"
    assert other["cpu_count"] == 64 and other["disks"] == []
    assert manager.get_host_resources(None)["cpu_count"] == 4
    assert manager.get_host_resources(None, host="node-3") is None


def test_get_host_resources_passes_null_columns_through(make_manager):
    manager = make_manager()
    manager.db.host_resources_add(
        "node-1",
        {
            "sampled_at": datetime.datetime(2026, 1, 2, 3, 4, 5),
            "driver": "proc",
            "cpu_count": 2,
            "load_1": None,
            "load_5": None,
            "load_15": None,
            "memory_total": None,
            "memory_available": None,
            "disks": None,
        },
    )
    answer = manager.get_host_resources(None)
    assert answer["cpu_count"] == 2
    assert answer["load_1"] is None and answer["memory_total"] is None
    assert answer["disks"] == []
