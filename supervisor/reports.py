"""SIGUSR2: oslo.reports' Guru Meditation Report, in the parent and in every worker.

The report (package, threads, processes, config with secrets masked, and any section a
manager registered with `TextGuruMeditation.register_section`) gets one section of ours,
"mgr-supervisor": the supervisor's table in the parent, the worker's manager, id and phase
in a worker. No report runs in a signal handler: SIGUSR2 reaches the parent's loop and a
worker's main thread through their wake-up pipes, like every other signal
(docs/architecture.md, "Signals"), which then call `write_report()`.

oslo.reports' Guru Meditation module imports jinja2 (~25 ms): it is imported at the first
report, never at start.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import time
from collections.abc import Callable

from oslo_config import cfg

from supervisor import version

LOG = logging.getLogger(__name__)

SECTION_TITLE = "mgr-supervisor"

# What this process's section says; set by the parent at start and by each worker after
# its fork, so a worker never reports the table it inherited.
_registered = False


def _nothing() -> str:
    return ""


_describe: Callable[[], str] = _nothing


def set_section(describe: Callable[[], str]) -> None:
    """This process's own section of its reports: `describe()` is called for each one."""
    global _describe
    _describe = describe


class _Version:
    """The version object oslo.reports' Package section reads (nova's version module shape)."""

    def vendor_string(self) -> str:
        return "mgr-supervisor"

    def product_string(self) -> str:
        return version.DISTRIBUTION

    def version_string_with_package(self) -> str:
        return version.version()


def _section() -> str:
    try:
        return _describe()
    except Exception as exc:  # a report must come out even if our section cannot
        return f"(unavailable: {type(exc).__name__}: {exc})"


def render() -> str:
    """The whole report, as text."""
    global _registered
    from oslo_reports import guru_meditation_report as gmr  # jinja2: only when asked

    if not _registered:
        gmr.TextGuruMeditation.register_section(SECTION_TITLE, _section)
        _registered = True
    return gmr.TextGuruMeditation(_Version()).run()


def write_report(conf: cfg.ConfigOpts, service_name: str) -> None:
    """Render a report and write it to stderr, or to a new 0600 file in [oslo_reports]
    log_dir named as oslo.reports names it (`<service>_gurumeditation_<UTC time>`)."""
    try:
        text = render()
    except Exception:
        LOG.exception("cannot produce the Guru Meditation Report")
        return
    log_dir = conf.oslo_reports.log_dir
    if not log_dir:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write(text + "\n")
            sys.stderr.flush()
        return
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
    base = os.path.join(log_dir, f"{_safe(service_name)}_gurumeditation_{stamp}")
    try:
        path = _write_new(base, text.encode())
    except OSError as exc:
        LOG.error("cannot write the Guru Meditation Report in %s: %s", log_dir, exc.strerror)
        return
    LOG.info("Guru Meditation Report written to %s", path)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _write_new(base: str, data: bytes) -> str:
    """A file of our user only, never one that exists (two reports in one second)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for attempt in range(100):
        path = base if attempt == 0 else f"{base}.{attempt}"
        try:
            fd = os.open(path, flags, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
        return path
    raise FileExistsError(17, "too many reports this second", base)


def warn_unsupported(conf: cfg.ConfigOpts) -> None:
    """oslo.reports' file trigger needs a polling thread in every process: not offered."""
    if conf.oslo_reports.file_event_handler:
        LOG.warning(
            "[oslo_reports] file_event_handler is ignored: send SIGUSR2 for a Guru Meditation "
            "Report"
        )
