"""A reload applied the oslo.config way: `mutate_config_files()`, in the parent and every worker.

oslo.config re-reads the files, puts the new values of `mutable=True` options in force in
every group (a manager's driver group as much as ours) and calls the hooks registered with
`register_mutate_hook` (oslo.log's own applies `debug`). Immutable options keep the value
they started with, so no two processes of one supervisor ever disagree on `host` or
`state_path` (docs/architecture.md, "Reload").

oslo.config logs each change itself, with the values, and warns about each immutable option
whose text changed. Both lines are taken here instead: its change lines would show a secret
option's value and repeat in every worker; its warnings come once, from the parent, naming
the file and saying what to do.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from typing import Any

from oslo_config import cfg

from supervisor import config, opts, stamp

LOG = logging.getLogger(__name__)

_IMMUTABLE_WARNING = "Ignoring change to immutable option"
_CHANGE_LINE = "Option %(group)s.%(option)s changed from"

Change = tuple[str | None, str]  # (group, option), group None for [DEFAULT]
# A worker reads the files again while they are being rewritten: this many tries, so
# far apart, until one read sees the same bytes from start to end.
MUTATE_ATTEMPTS = 5
MUTATE_RETRY_SECONDS = 0.05


class _OsloConfigLines(logging.Filter):
    """Drops oslo.config's mutation lines, keeping the immutable options it names."""

    def __init__(self) -> None:
        super().__init__()
        self.immutable: list[Change] = []

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if message.startswith(_IMMUTABLE_WARNING) and isinstance(record.args, dict):
            group = record.args.get("group")
            self.immutable.append((None if group == "DEFAULT" else group, record.args["option"]))
            return False
        return not message.startswith(_CHANGE_LINE)


def mutate(conf: cfg.ConfigOpts) -> tuple[dict[Change, tuple[Any, Any]], list[Change]]:
    """Re-read the files into `conf`: the mutable options changed (old and new text), and the
    immutable options whose text changed (oslo.config's own comparison, with the files as
    they were at start). Raises oslo.config's errors, and OSError, as `conf()` does."""
    lines = _OsloConfigLines()
    logger = logging.getLogger("oslo_config.cfg")
    logger.addFilter(lines)
    try:
        changed = conf.mutate_config_files()
    finally:
        logger.removeFilter(lines)
    return changed, lines.immutable


def value(conf: cfg.ConfigOpts, change: Change) -> tuple[bool, Any]:
    """(True, value) of an option `conf` has registered and can read, else (False, None)."""
    group, name = change
    try:
        return True, conf[name] if group is None else conf[group][name]
    except (cfg.NoSuchOptError, cfg.NoSuchGroupError, cfg.Error, ValueError):
        return False, None


def describe(changes: Iterable[Change], known: dict[Change, cfg.Opt], fresh: Any) -> Iterator[str]:
    """One phrase per changed option, its new value shown only when it is known not secret."""
    for group, name in sorted(changes, key=lambda c: (c[0] or "", c[1])):
        opt = known.get((group, name))
        where = f"[{group or 'DEFAULT'}] {name}"
        if opt is None or opt.secret:
            yield f"{where} changed"
        else:
            yield f"{where} = {value(fresh, (group, name))[1]!r}"


def registered(conf: cfg.ConfigOpts) -> set[Change]:
    """Every (group, option) `conf` has registered now."""
    options: set[Change] = set()
    for name in conf:
        attribute = conf[name]
        if isinstance(attribute, cfg.ConfigOpts.GroupAttr):
            options.update((name, option) for option in attribute)
        else:
            options.add((None, name))
    return options


class Follower:
    """A worker's side of a reload: mutate its config when the parent has validated files
    other than those it runs on, and only those files (their digest is in the stamp)."""

    def __init__(
        self,
        conf: cfg.ConfigOpts,
        config_stamp: stamp.ConfigStamp,
        spec: config.ManagerSpec,
        label: str,
        worker_id: int,
    ) -> None:
        self._conf = conf
        self._stamp = config_stamp
        self.spec = spec  # as the config in force has it: remade after each mutation
        self._label = label
        # What the parent forked us with: its generation, and the files it runs on.
        self.generation, self._applied = config_stamp.read()
        # The parent warns about the options it knows; a group that only the manager
        # registers (a driver's) is warned about by its worker 0, once per manager.
        self._parent_knows = registered(conf) if worker_id == 0 else None

    def follow(self) -> None:
        """Called on SIGHUP, before the manager's `reset()` (or a Service's `reload()`).

        Files that did not change since ours cost nothing (a mutation costs a worker ~2 ms
        of CPU). A worker that kept its config because the files had changed again looks
        once more at the next SIGHUP.
        """
        generation, validated = self._stamp.read()
        if generation == self.generation:
            return
        if validated == self._applied:
            self.generation = generation
            return
        try:
            read = self._digest()
            if read != validated:
                LOG.warning(
                    "%s: the config files changed after the supervisor validated them; "
                    "keeping the config in force until the next reload",
                    self._label,
                )
                return
            changed, immutable, read = self._mutate_steadily(read)
        except (OSError, cfg.Error) as exc:
            LOG.error("%s: cannot read the reloaded config, keeping mine: %s", self._label, exc)
            return
        self.generation, self._applied = generation, read
        if read != validated:
            LOG.warning(
                "%s: the config files were rewritten while this worker read them: it runs "
                "on them as they are now, which the supervisor's next reload validates",
                self._label,
            )
        LOG.debug("%s: reload: %d option(s) changed", self._label, len(changed))
        for group, name in immutable:
            if self._parent_knows is not None and (group, name) not in self._parent_knows:
                LOG.warning(
                    "%s: [%s] %s changed, but it needs a restart of the supervisor: not applied",
                    self._label,
                    group or "DEFAULT",
                    name,
                )

    def _mutate_steadily(
        self, before: bytes
    ) -> tuple[dict[Change, tuple[Any, Any]], list[Change], bytes]:
        """Mutate until the files hold still across one read (a file written in place may be
        read half old, half new); returns what changed and the digest of what was read."""
        for _attempt in range(MUTATE_ATTEMPTS):
            changed, immutable = mutate(self._conf)
            after = self._digest()
            if after == before:
                break
            before = after
            time.sleep(MUTATE_RETRY_SECONDS)
        if opts.SUPERVISOR_GROUP in {group for group, _ in changed}:
            config.refresh_manager_defaults(self._conf, [self.spec])
        self.spec = config.manager_spec(self._conf, self.spec.name, self.spec.manager_class)
        return changed, immutable, after

    def _digest(self) -> bytes:
        return stamp.files_digest(config.config_files(self._conf))
