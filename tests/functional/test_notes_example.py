"""The worked example `workers.notes` end to end on RabbitMQ, through the commands that
doc/source/writing-a-manager.md shows ("A nova-shaped manager") and through its client,
`workers.notes.rpcapi.NotesAPI`."""

from __future__ import annotations

import functools
import json

from tests import rpcfixtures
from tests.functional.conftest import at_once
from tests.functional.test_rpc import ctl_all, run_caller

# Another service: oslo's global config, the client class the example ships.
CALLER = """\
import json, sys
from oslo_config import cfg
from supervisor import config
from workers.notes import exception, rpcapi

config_file, topic = sys.argv[1:]
config.register_static_opts(cfg.CONF)
cfg.CONF(["--config-file", config_file], project="notes-caller")
api = rpcapi.NotesAPI(topic)
seen = {}
api.put_note(None, "apple", "red")
api.put_note(None, "avocado", "green")
api.put_note(None, "banana", "yellow")
seen["get"] = api.get_note(None, "apple")
try:
    api.get_note(None, "cherry")
except exception.NoteNotFound as exc:
    seen["typed"] = str(exc).splitlines()[0]  # then the remote traceback
seen["prefix_2_1"] = api.list_notes(None, prefix="a")
capped = rpcapi.NotesAPI(topic, version_cap="2.0")
seen["can_send_2_1"] = capped.client.can_send_version("2.1")
seen["prefix_2_0"] = capped.list_notes(None, prefix="a")
print(json.dumps(seen))
"""


def test_the_notes_example_as_readme_drives_it(supervisor, broker, topic):
    sections = rpcfixtures.rpc_sections(broker, topic)
    supervisor.configure(
        {
            "notes": {
                "manager": "workers.notes.manager.NotesManager",
                "notes_driver": "memory",
                "topic": topic,
            }
        },
        default=sections["default"],
        oslo_messaging_rabbit=sections["oslo_messaging_rabbit"],
    )
    supervisor.start()
    supervisor.wait_for(lambda: "notes worker(0): ready" in supervisor.log(), what="ready")

    # Independent calls at once (each is a new interpreter): the writes, then the reads.
    put, old, missing = ctl_all(
        supervisor,
        ("call", "notes", "put_note", 'key="a"', 'text="hello"'),
        ("call", "notes", "set_note", 'key="b"', 'text="v1"', "--version", "1.3"),
        ("call", "notes", "get_note", 'key="zz"'),
    )
    assert (put.returncode, put.stdout.strip()) == (0, "null"), put.stderr
    assert old.returncode == 0, old.stderr
    assert missing.returncode == 1
    assert missing.stderr == (
        "mgr-supervisorctl: call notes get_note: NoteNotFound: note 'zz' could not be found\n"
    )
    seen, (got, got_old) = at_once(
        functools.partial(run_caller, CALLER, str(supervisor.config_file), topic),
        functools.partial(
            ctl_all,
            supervisor,
            ("call", "notes", "get_note", 'key="a"'),
            ("call", "notes", "get_note", 'key="b"'),
        ),
    )
    assert (got.returncode, json.loads(got.stdout)) == (0, "hello"), got.stderr
    assert json.loads(got_old.stdout) == "v1", "the 1.x proxy wrote through the 2.x manager"
    assert seen == {
        "get": "red",
        "typed": "note 'cherry' could not be found",
        "prefix_2_1": ["a", "apple", "avocado"],  # "a": README's put, above
        "can_send_2_1": False,
        "prefix_2_0": ["a", "apple", "avocado"],  # filtered by the client
    }
