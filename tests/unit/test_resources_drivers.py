"""Both resources drivers read this host for real, and agree with each other (no mocks)."""

from __future__ import annotations

import json
import os

import pytest

from workers.drivers.base import ResourcesDriver
from workers.drivers.proc_driver import ProcDriver
from workers.drivers.psutil_driver import PsutilDriver

DRIVERS = [PsutilDriver, ProcDriver]
# What may change between two reads a few milliseconds apart on a busy test machine.
MEMORY_SLACK = 256 * 1024 * 1024
DISK_SLACK = 256 * 1024 * 1024


def bracket(value, first, second, slack):
    """`value` read between `first` and `second` lies between them, give or take `slack`."""
    return min(first, second) - slack <= value <= max(first, second) + slack


@pytest.mark.parametrize("driver_class", DRIVERS)
def test_a_sample_of_this_host_is_plausible(driver_class):
    driver = driver_class()
    assert isinstance(driver, ResourcesDriver)
    sample = driver.sample()
    assert set(sample) == {
        "cpu_count",
        "load_1",
        "load_5",
        "load_15",
        "memory_total",
        "memory_available",
        "disks",
    }
    assert type(sample["cpu_count"]) is int and sample["cpu_count"] >= 1
    for key in ("load_1", "load_5", "load_15"):
        assert type(sample[key]) is float and sample[key] >= 0
    assert type(sample["memory_total"]) is int
    assert type(sample["memory_available"]) is int
    assert 0 < sample["memory_available"] <= sample["memory_total"]
    # Bytes, not kB: more than 64 MiB of memory, less than 64 TiB.
    assert 2**26 < sample["memory_total"] < 2**46
    assert sample["disks"], "this host has at least one real filesystem mounted"
    for disk in sample["disks"]:
        assert set(disk) == {"mount", "total", "used"}
        assert os.path.isabs(disk["mount"]) and os.path.ismount(disk["mount"])
        assert 0 <= disk["used"] <= disk["total"]
    json.dumps(sample)


@pytest.mark.parametrize("driver_class", DRIVERS)
def test_the_root_filesystem_is_among_the_disks(driver_class):
    root = os.statvfs("/")
    disks = {disk["mount"]: disk for disk in driver_class().sample()["disks"]}
    if "/" not in disks:
        pytest.skip("/ is not a real filesystem here (e.g. an overlay root)")
    assert disks["/"]["total"] == root.f_blocks * root.f_frsize


def test_the_drivers_agree():
    first, middle, last = ProcDriver().sample(), PsutilDriver().sample(), ProcDriver().sample()
    assert middle["cpu_count"] == first["cpu_count"] == last["cpu_count"]
    assert middle["memory_total"] == first["memory_total"] == last["memory_total"]
    # The kernel updates the load every 5 s: psutil's read is one of the two around it.
    for key in ("load_1", "load_5", "load_15"):
        assert bracket(middle[key], first[key], last[key], 0.01), (key, first, middle, last)
    assert bracket(
        middle["memory_available"],
        first["memory_available"],
        last["memory_available"],
        MEMORY_SLACK,
    )
    mounts = [disk["mount"] for disk in middle["disks"]]
    assert mounts == [disk["mount"] for disk in first["disks"]]
    assert mounts == [disk["mount"] for disk in last["disks"]]
    for before, disk, after in zip(first["disks"], middle["disks"], last["disks"], strict=True):
        assert disk["total"] == before["total"] == after["total"], disk["mount"]
        assert bracket(disk["used"], before["used"], after["used"], DISK_SLACK), disk["mount"]


def test_the_drivers_agree_on_named_mounts():
    wanted = ["/", "/proc", "/dev/shm", "/no/such/mount"]
    psutil_disks = PsutilDriver(mounts=wanted).sample()["disks"]
    proc_disks = ProcDriver(mounts=wanted).sample()["disks"]
    mounts = [disk["mount"] for disk in psutil_disks]
    assert mounts == [disk["mount"] for disk in proc_disks]
    assert set(mounts) == {mount for mount in wanted if os.path.ismount(mount)}, (
        "named mounts are sampled whatever their filesystem; unmounted ones are left out"
    )
    for ours, theirs in zip(proc_disks, psutil_disks, strict=True):
        assert ours["total"] == theirs["total"], ours["mount"]


def test_the_proc_driver_knows_the_real_filesystems_as_psutil_does():
    import psutil

    real = {part.fstype for part in psutil.disk_partitions(all=False)}
    assert real <= ProcDriver().real_fstypes()
    assert "proc" not in ProcDriver().real_fstypes()
    assert "tmpfs" not in ProcDriver().real_fstypes()


def test_mount_points_with_spaces_are_unescaped_as_getmntent_does():
    from workers.drivers.proc_driver import _unescape

    assert _unescape(rb"/mnt/my\040disk\011tab\134slash") == "/mnt/my disk\ttab\\slash"
