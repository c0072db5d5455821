"""A manager module that sets up oslo.reports itself, at import, as an OpenStack service does
in its main(): its section must appear in the supervisor's reports, and its SIGUSR2 handler
must not produce a second report."""

from __future__ import annotations

import os

from oslo_reports import guru_meditation_report as gmr

from tests.functional.managers import EventManager

SECTION = "Event manager's own section"


class _Version:
    def vendor_string(self) -> str:
        return "tests"

    def product_string(self) -> str:
        return "gmr-manager"

    def version_string_with_package(self) -> str:
        return "1.0"


def _own_section() -> str:
    return f"own section of pid {os.getpid()}"


gmr.TextGuruMeditation.register_section(SECTION, _own_section)
gmr.TextGuruMeditation.setup_autorun(_Version())


class GmrManager(EventManager):
    """EventManager, from a module that set up oslo.reports."""
