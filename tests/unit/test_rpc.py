"""The parent's RPC preparation, without a broker: nothing here connects."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

# A parent as the supervisor's (a fresh interpreter, so nothing else imported the plugins),
# then a forked child that builds a worker's transport and RPC server and prints the modules
# that took. Building them opens no connection.
PARENT = textwrap.dedent(
    """\
    import json, os, sys
    from oslo_config import cfg
    from supervisor import rpc

    config, preload = sys.argv[1], sys.argv[2] == "preload"
    conf = cfg.ConfigOpts()
    conf([], project="mgr-supervisor-test", default_config_files=[config])
    assert rpc.check_transport_url(conf) is None
    if preload:
        rpc.load_plugins(conf)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        before = set(sys.modules)
        transport = rpc.messaging.get_rpc_transport(conf)
        target = rpc.messaging.Target(topic="preload", server="host")
        rpc.messaging.get_rpc_server(transport, target, [], executor="threading")
        os.write(write_end, json.dumps(sorted(set(sys.modules) - before)).encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    print(os.read(read_end, 1 << 20).decode())
    """
)


def _modules_a_worker_imports(tmp_path, preload: bool) -> list[str]:
    config = tmp_path / "rpc.conf"
    config.write_text("[DEFAULT]\ntransport_url = rabbit://guest:guest@127.0.0.1:9/\n")
    done = subprocess.run(
        [sys.executable, "-c", PARENT, str(config), "preload" if preload else "none"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


@pytest.mark.parametrize("preload", [False, True], ids=["without", "with"])
def test_a_worker_imports_no_plugin_that_the_parent_loaded(tmp_path, preload):
    """Without `load_plugins` each worker imports the threading executor (futurist, and the
    eventlet and multiprocessing modules it takes) into its private memory; with it,
    nothing."""
    imported = _modules_a_worker_imports(tmp_path, preload)
    if preload:
        assert imported == []
    else:
        assert {"futurist", "futurist._thread"} <= set(imported)
