"""supervisor.logs and supervisor.reports as pure logic: record fields, file checks, reports."""

from __future__ import annotations

import json
import logging
import os
import stat

from oslo_context import context as oslo_context
from oslo_log import formatters
from oslo_log import log as oslo_log

from supervisor import logs, reports


def _json_line(logger_name: str, fields: logs.WorkerFields, emit) -> dict:
    """What oslo.log's JSONFormatter writes for one record, through a handler with `fields`."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect()
    handler.setFormatter(formatters.JSONFormatter())
    handler.addFilter(fields)
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        emit()
    finally:
        logger.removeHandler(handler)
    (line,) = lines
    return json.loads(line)


def test_json_lines_get_manager_and_worker_id_fields():
    fields = logs.WorkerFields("demo", 3)
    log = logging.getLogger("test.logs.plain")
    record = _json_line("test.logs.plain", fields, lambda: log.warning("hello %s", "x"))
    assert record["extra"] == {"manager": "demo", "worker_id": 3}
    assert record["message"] == "hello x"


def test_a_callers_own_fields_are_kept_next_to_ours():
    fields = logs.WorkerFields("demo", 0)
    adapter = oslo_log.getLogger("test.logs.adapter")  # oslo.log's keyword arguments
    record = _json_line(
        "test.logs.adapter", fields, lambda: adapter.warning("hi", manager="mine", size=2)
    )
    assert record["extra"]["manager"] == "mine"
    assert record["extra"]["size"] == 2
    assert record["extra"]["worker_id"] == 0


def test_the_process_name_is_every_records_process_name():
    logs.set_process_name("demo worker(7)")
    try:
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
        assert record.processName == "demo worker(7)"
    finally:
        logs.set_process_name("MainProcess")


def test_fresh_context_is_the_current_one_and_new_each_time():
    first = logs.fresh_context()
    assert oslo_context.get_current() is first
    second = logs.fresh_context()
    assert oslo_context.get_current() is second
    assert first.request_id != second.request_id
    assert second.request_id.startswith("req-")


def test_unwritable_says_why(tmp_path):
    assert logs.unwritable(str(tmp_path / "new.log")) is None
    assert logs.unwritable(str(tmp_path)) == "is a directory"
    missing = tmp_path / "missing" / "x.log"
    assert logs.unwritable(str(missing)) == f"directory {missing.parent} does not exist"
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked.log"
        locked.write_text("")
        locked.chmod(0o400)
        assert logs.unwritable(str(locked)) == "not writable"


def test_report_files_are_private_and_never_overwritten(tmp_path):
    base = str(tmp_path / "svc_gurumeditation_20260101000000")
    first = reports._write_new(base, b"one")
    second = reports._write_new(base, b"two")
    assert (first, second) == (base, base + ".1")
    assert open(first).read() == "one" and open(second).read() == "two"
    assert stat.S_IMODE(os.stat(second).st_mode) == 0o600


def test_the_report_has_our_section_even_when_it_fails():
    reports.set_section(lambda: "table goes here")
    try:
        text = reports.render()
        assert "mgr-supervisor" in text and "table goes here" in text
        assert "Guru Meditation" in text

        def broken() -> str:
            raise RuntimeError("boom")

        reports.set_section(broken)
        assert "(unavailable: RuntimeError: boom)" in reports.render()
    finally:
        reports.set_section(reports._nothing)
