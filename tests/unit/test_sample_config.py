"""The committed sample config carries every option as the code declares it today.

Only our namespaces are compared, line by line, so a new oslo.log release changing its own
help text does not fail this test; `tox -e genconfig` regenerates the whole sample.
"""

from __future__ import annotations

from pathlib import Path

from oslo_config import generator

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "etc" / "mgr-supervisor" / "mgr-supervisor.conf.sample"


def test_the_committed_sample_is_up_to_date(tmp_path):
    output = tmp_path / "ours.conf"
    generator.main(
        [
            "--namespace",
            "mgr-supervisor",
            "--namespace",
            "mgr-supervisor.workers",
            "--wrap-width",
            "79",
            "--output-file",
            str(output),
        ]
    )
    committed = set(SAMPLE.read_text().splitlines())
    missing = [line for line in output.read_text().splitlines() if line and line not in committed]
    assert not missing, f"run `tox -e genconfig` and commit the sample; missing: {missing[:5]}"
