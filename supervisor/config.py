"""The validation that runs before anything forks, over the options of `supervisor/opts.py`.

Validation reads every value of a config into a throw-away
`ConfigOpts` first, because oslo.config only reports a bad value when it is read: a config
that passes `load()` cannot fail later in a worker.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import importlib
import inspect
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence

import cotyledon
from oslo_config import cfg
from oslo_log import log as oslo_log
from oslo_reports import opts as gmr_opts

from supervisor import db, logs, version
from supervisor.health import HealthLimits
from supervisor.manager import DEFAULT_DB_DRIVER, MANAGER_SECTION_PREFIX, Manager
from supervisor.opts import (
    MAX_SOCKET_PATH,
    PROJECT,
    SUPERVISOR_GROUP,
    cli_opts,
    default_opts,
    http_address,
    manager_common_opts,
    manager_section_opts,
    supervisor_opts,
)
from supervisor.policy import RestartPolicy

LOG = logging.getLogger(__name__)


class ConfigError(Exception):
    """A configuration problem, phrased as one line naming file, section and option."""


@dataclasses.dataclass(frozen=True)
class ManagerSpec:
    """What the parent needs to run one configured manager."""

    name: str
    manager_class: type
    workers: int
    topic: str  # its RPC topic: [manager:NAME] topic, else NAME
    db_driver: str = DEFAULT_DB_DRIVER
    policy: RestartPolicy = RestartPolicy()
    limits: HealthLimits = HealthLimits()
    # What its workers run by: read with the rest, so a reload reaches them the same way.
    host: str = ""
    periodic_interval_max: float = 60.0
    periodic_fuzzy_delay: float = 0.0
    report_interval: float = 10.0
    graceful_shutdown_timeout: float = 60.0

    @property
    def section(self) -> str:
        return MANAGER_SECTION_PREFIX + self.name

    def opts(self) -> list[cfg.Opt]:
        """Every option of its section: ours, then the manager class's own."""
        return manager_section_opts() + list(getattr(self.manager_class, "opts", []))


class _RawConfig:
    """Which keys each section of the config files holds, and which file holds each key.

    oslo.config knows the options registered, not the keys written: unknown keys (typos)
    are found the way oslo-config-validator finds them, with oslo.config's own parser
    (`cfg.ConfigParser`) over each file. The same parse names the file to blame for a
    value: the last file that sets the key, as oslo.config reads the files. Not
    `get_location()`: it records one file per section name (the last one parsed with that
    section), so with a --config-dir it names a file that may not contain the option.
    """

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.files = config_files(conf)
        self.keys: dict[str, dict[str, str]] = {}
        for path in self.files:
            sections: dict[str, dict[str, list[str]]] = {}
            cfg.ConfigParser(path, sections).parse()
            for section, keys in sections.items():
                known = self.keys.setdefault(section, {})
                known.update(dict.fromkeys(keys, path))

    def where(self, section: str, key: str | None = None) -> str:
        """The file that sets `[section] key` (without a key: the first file with the
        section); if none does, the first config file, where an operator would add it."""
        first = self.files[0] if self.files else "<no config file>"
        keys = self.keys.get(section, {})
        if key is None:
            return next(iter(keys.values()), first)
        return keys.get(key, first)


def file_locator(conf: cfg.ConfigOpts) -> Callable[[str, str], str]:
    """`where(section, key)`: the config file of a parsed `conf` that sets the key (for a
    message); the files are parsed once, here."""
    return _RawConfig(conf).where


def config_files(conf: cfg.ConfigOpts) -> list[str]:
    """The files a parsed `conf` read, in oslo.config's order: --config-file, then each
    --config-dir's *.conf sorted by name."""
    files = list(conf.config_file or [])
    for directory in conf.config_dir or []:
        files.extend(sorted(glob.glob(os.path.join(directory, "*.conf"))))
    return files


def register_static_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_cli_opts(cli_opts)
    conf.register_opts(default_opts)
    conf.register_opts(supervisor_opts + manager_common_opts(), group=SUPERVISOR_GROUP)
    db.register_opts(conf)
    oslo_log.register_options(conf)
    gmr_opts.set_defaults(conf)  # [oslo_reports]: where a SIGUSR2 report goes


def parse_args(
    conf: cfg.ConfigOpts,
    argv: Sequence[str],
    default_config_files: list[str] | None = None,
    program: str = PROJECT,
) -> None:
    """Parse the command line and the config files; a broken file becomes a ConfigError.

    `--version` prints `<program> <version>` and exits 0 (SystemExit, as `--help` does).
    """
    try:
        conf(
            list(argv),
            project=PROJECT,
            version=version.for_command_line(program, argv),
            default_config_files=default_config_files,
        )
    except cfg.ConfigFilesNotFoundError as exc:
        raise ConfigError(f"{', '.join(exc.config_files)}: config file not found") from None
    except cfg.ConfigFilesPermissionDeniedError as exc:
        raise ConfigError(
            f"{', '.join(exc.config_files)}: config file not readable (permission denied)"
        ) from None
    except cfg.ConfigDirNotFoundError as exc:
        raise ConfigError(f"{exc.config_dir}: config directory not found") from None
    except cfg.ConfigFileParseError as exc:
        raise ConfigError(f"{exc.config_file}: not a valid INI file: {exc.msg}") from None


def _read(
    conf: cfg.ConfigOpts, raw: _RawConfig, section: str, name: str, secret: bool = False
) -> object:
    """Read one option so that a bad value is reported where it was written (never a secret)."""
    group = None if section == "DEFAULT" else section
    try:
        return conf[name] if group is None else conf[group][name]
    except (ValueError, cfg.Error) as exc:
        where = f"{raw.where(section, name)}: [{section}] {name}"
        if secret:
            raise ConfigError(f"{where}: invalid value (not shown: the option is secret)") from None
        value = _raw_value(raw, section, name)
        reason = str(exc).rsplit("is not valid: ", 1)[-1]
        raise ConfigError(f"{where}: invalid value {value!r}: {reason}") from None


def _raw_value(raw: _RawConfig, section: str, name: str) -> str:
    path = raw.where(section, name)
    sections: dict[str, dict[str, list[str]]] = {}
    try:
        cfg.ConfigParser(path, sections).parse()
    except (OSError, cfg.ParseError):
        return "?"
    return sections.get(section, {}).get(name, ["?"])[-1]


def import_manager_class(path: str) -> type:
    """Import a Manager (or any cotyledon.Service) subclass by dotted path, or explain why not."""
    module_name, _, class_name = path.rpartition(".")
    if not module_name:
        raise ValueError(f"{path!r} is not a dotted path (module.Class)")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any error in user code is a config problem here
        raise ValueError(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ValueError(f"module {module_name!r} has no attribute {class_name!r}")
    if not (isinstance(cls, type) and issubclass(cls, (Manager, cotyledon.Service))):
        raise ValueError(
            f"{path!r} is not a subclass of supervisor.manager.Manager or cotyledon.Service"
        )
    if reason := unbuildable(cls):
        raise ValueError(f"{path} cannot be built the way the supervisor builds it: {reason}")
    return cls


def unbuildable(cls: type) -> str | None:
    """Why the worker's call of `cls` would fail on its signature alone, without building it:
    a Manager as nova's `Service` builds one, `cls(host=..., db_driver=...)`; a plain
    cotyledon.Service as cotyledon does, `cls(worker_id)`. None when it binds."""
    if issubclass(cls, Manager):
        call, args, kwargs = "(host=..., db_driver=...)", (), {"host": "", "db_driver": None}
    else:
        call, args, kwargs = "(worker_id)", (0,), {}
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):  # no signature to read: the call itself will tell
        return None
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        return f"{cls.__name__}{call}: {exc}"
    return None


def register_manager_opts(conf: cfg.ConfigOpts, name: str) -> None:
    """Register a [manager:NAME] section's common options, defaulting to [supervisor]'s."""
    section = MANAGER_SECTION_PREFIX + name
    conf.register_opts(manager_section_opts(), group=section)
    for opt in manager_common_opts():
        conf.set_default(opt.dest, conf[SUPERVISOR_GROUP][opt.dest], group=section)


def register_manager_class_opts(conf: cfg.ConfigOpts, name: str, cls: type) -> None:
    """Register the manager's own `opts` in its section (idempotent)."""
    conf.register_opts(list(getattr(cls, "opts", [])), group=MANAGER_SECTION_PREFIX + name)


def validate(conf: cfg.ConfigOpts) -> list[ManagerSpec]:
    """Check everything a start needs; return the managers to run, or raise ConfigError.

    All but the database URL: checking it imports SQLAlchemy and the driver (psycopg:
    ~150 ms), which the supervisor's service recorder does after its fork, refusing a URL it
    cannot use before any hook runs (docs/architecture.md, "Service records"); a reload
    does not change `[database]`. `validate_database` checks it, for --check-config and
    the commands that connect.
    """
    raw = _RawConfig(conf)
    if not raw.files:
        raise ConfigError(
            "no config file found: pass --config-file FILE (or --config-dir DIR); "
            f"searched oslo.config's default paths for {PROJECT}.conf"
        )
    for opt in default_opts:
        _read(conf, raw, "DEFAULT", opt.dest, opt.secret)
    for opt in supervisor_opts + manager_common_opts():
        _read(conf, raw, SUPERVISOR_GROUP, opt.dest, opt.secret)
    _validate_database(conf, raw, check_url=False)
    _validate_transport(conf, raw)
    # After the transport: its options are known only with RPC on.
    # [DEFAULT] also holds options that libraries and manager modules register on
    # oslo.config's global `cfg.CONF`: those are known too.
    default_keys = raw.keys.get("DEFAULT", {})
    _warn_unknown_keys(raw, "DEFAULT", {n for n in default_keys if n in conf or n in cfg.CONF})
    _warn_unknown_keys(raw, SUPERVISOR_GROUP, set(conf[SUPERVISOR_GROUP]))

    socket_path = conf.supervisor.control_socket
    if len(os.fsencode(socket_path)) > MAX_SOCKET_PATH:
        raise ConfigError(
            f"{raw.where(SUPERVISOR_GROUP, 'control_socket')}: [supervisor] control_socket: "
            f"path longer than {MAX_SOCKET_PATH} bytes: {socket_path}"
        )
    if conf.supervisor.http_listen:
        try:
            http_address(conf.supervisor.http_listen)
        except ValueError as exc:
            raise ConfigError(
                f"{raw.where(SUPERVISOR_GROUP, 'http_listen')}: [supervisor] http_listen: "
                f"invalid value {conf.supervisor.http_listen!r}: {exc}"
            ) from None
    names = [n.strip() for n in conf.supervisor.enabled_managers if n.strip()]
    if not names:
        raise ConfigError(
            f"{raw.where(SUPERVISOR_GROUP, 'enabled_managers')}: [supervisor] enabled_managers: "
            "no managers enabled; list at least one, each with a [manager:NAME] section"
        )
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(
            f"{raw.where(SUPERVISOR_GROUP, 'enabled_managers')}: [supervisor] enabled_managers: "
            f"listed more than once: {', '.join(duplicates)}"
        )
    return [_validate_manager(conf, raw, name) for name in names]


def validate_database(conf: cfg.ConfigOpts) -> None:
    """The [database] part of `validate()` alone (mgr-supervisor-manage, mgr-supervisorctl).

    `conf` needs `default_opts` and the [database] options registered.
    """
    _validate_database(conf, _RawConfig(conf), check_url=True)


def _validate_database(conf: cfg.ConfigOpts, raw: _RawConfig, check_url: bool) -> None:
    """[database] values, the connection URL (never printed), and the heartbeat timing."""
    if conf.service_down_time <= conf.report_interval:
        raise ConfigError(
            f"{raw.where('DEFAULT', 'service_down_time')}: [DEFAULT] service_down_time: "
            f"{conf.service_down_time} must be greater than report_interval "
            f"({conf.report_interval}), else a service is down between two heartbeats"
        )
    for _group, opts in db.list_opts():
        for opt in opts:
            _read(conf, raw, db.DATABASE_GROUP, opt.dest, opt.secret)
    if not check_url:
        return
    # Imported here: SQLAlchemy Core is paid only by the commands that validate a config.
    from supervisor.db import schema

    try:
        schema.connection_url(conf.database.connection)
    except schema.InvalidConnection as exc:
        raise ConfigError(
            f"{raw.where(db.DATABASE_GROUP, 'connection')}: [database] connection: {exc}"
        ) from None


def _warn_unknown_keys(raw: _RawConfig, section: str, known: set[str]) -> None:
    """A key no option reads is most likely a typo: say so (the start goes on)."""
    for key in sorted(set(raw.keys.get(section, {})) - known):
        LOG.warning(
            "%s: [%s] %s: unknown option, ignored (a typo?)", raw.keys[section][key], section, key
        )


def rpc_enabled(conf: cfg.ConfigOpts) -> bool:
    """RPC is on when a config file sets `[DEFAULT] transport_url` (validation registered it
    then): oslo.messaging's own default, a broker on localhost, never turns it on."""
    return "transport_url" in conf and bool(conf.transport_url)


def validate_transport(conf: cfg.ConfigOpts) -> None:
    """The RPC part of `validate()` alone (mgr-supervisorctl call)."""
    _validate_transport(conf, _RawConfig(conf))


def _validate_transport(conf: cfg.ConfigOpts, raw: _RawConfig) -> None:
    """`[DEFAULT] transport_url` (secret, never printed), only when a file sets it: otherwise
    RPC is off and oslo.messaging is never imported."""
    if "transport_url" not in raw.keys.get("DEFAULT", {}):
        return
    from supervisor import rpc  # oslo.messaging: ~130 ms, paid only with RPC on

    problem = rpc.check_transport_url(conf)
    where = f"{raw.where('DEFAULT', 'transport_url')}: [DEFAULT] transport_url"
    if problem is not None:
        raise ConfigError(f"{where}: {problem}")
    opts = rpc.rabbit_opts()
    conf.register_opts(opts, group=rpc.RABBIT_GROUP)
    for opt in opts:
        _read(conf, raw, rpc.RABBIT_GROUP, opt.dest, opt.secret)


def _validate_manager(conf: cfg.ConfigOpts, raw: _RawConfig, name: str) -> ManagerSpec:
    section = MANAGER_SECTION_PREFIX + name
    if section not in raw.keys:
        raise ConfigError(
            f"{raw.where(SUPERVISOR_GROUP, 'enabled_managers')}: [supervisor] enabled_managers: "
            f"manager {name!r} is enabled but there is no [{section}] section"
        )
    register_manager_opts(conf, name)
    path = _read(conf, raw, section, "manager")
    if not path:
        raise ConfigError(
            f"{raw.where(section)}: [{section}] manager: missing; set it to the dotted path "
            "of a Manager subclass"
        )
    try:
        cls = import_manager_class(str(path))
    except ValueError as exc:
        raise ConfigError(f"{raw.where(section, 'manager')}: [{section}] manager: {exc}") from None
    try:
        register_manager_class_opts(conf, name, cls)
    except cfg.DuplicateOptError as exc:
        raise ConfigError(
            f"{raw.where(section, 'manager')}: [{section}] manager: {path}.opts clashes "
            f"with a supervisor option: {exc}"
        ) from None
    secrets = {opt.dest for opt in getattr(cls, "opts", []) if opt.secret}
    known = set()
    for opt_name in conf[section]:
        _read(conf, raw, section, opt_name, opt_name in secrets)
        known.add(opt_name)
    _warn_unknown_keys(raw, section, known)
    log_path = logs.manager_log_file(conf, section)
    if log_path is not None and (problem := logs.unwritable(log_path)):
        raise ConfigError(
            f"{raw.where(section, 'log_file')}: [{section}] log_file: cannot write {log_path}: "
            f"{problem}"
        )
    return manager_spec(conf, name, cls)


def manager_spec(conf: cfg.ConfigOpts, name: str, cls: type) -> ManagerSpec:
    """One manager's spec from `conf` as it is now: the one route from its section's values
    to what the parent and its workers act on (the parent after validating; each worker
    again after each reload it applies)."""
    values = conf[MANAGER_SECTION_PREFIX + name]
    return ManagerSpec(
        name=name,
        manager_class=cls,
        workers=values.workers,
        topic=values.topic or name,
        db_driver=values.db_driver,
        policy=RestartPolicy(
            start_secs=values.start_secs,
            start_retries=values.start_retries,
            backoff_initial=values.restart_backoff_initial,
            backoff_max=values.restart_backoff_max,
        ),
        limits=HealthLimits(
            start_timeout=values.start_timeout,
            heartbeat_timeout=values.heartbeat_timeout,
            max_rss_mb=values.max_rss_mb,
        ),
        host=conf.host,
        periodic_interval_max=values.periodic_interval_max,
        periodic_fuzzy_delay=values.periodic_fuzzy_delay,
        report_interval=conf.report_interval,
        graceful_shutdown_timeout=conf.graceful_shutdown_timeout,
    )


def load(
    argv: Sequence[str],
    conf: cfg.ConfigOpts | None = None,
    default_config_files: list[str] | None = None,
) -> tuple[cfg.ConfigOpts, list[ManagerSpec]]:
    """Parse and validate: the single path for a start, a reload and --check-config.

    At start `conf` is oslo's global `cfg.CONF`, the config in force that managers read;
    a reload validates into a fresh `ConfigOpts` first so a broken file changes nothing.
    """
    if conf is None:
        conf = cfg.ConfigOpts()
    register_static_opts(conf)
    parse_args(conf, argv, default_config_files)
    return conf, validate(conf)


def adopt_manager_sections(conf: cfg.ConfigOpts, specs: list[ManagerSpec]) -> None:
    """Make the live `conf` know the [manager:NAME] sections of a validated reload.

    Runs before a reload changes anything, and only adds option definitions. oslo.config
    cannot unregister an option: a reloaded class whose option changed its definition (an
    IntOpt become a StrOpt) is refused here, so the reload is rejected instead of failing
    half-way.
    """
    for spec in specs:
        register_manager_opts(conf, spec.name)
        for opt in getattr(spec.manager_class, "opts", []):
            try:
                conf.register_opt(opt, group=spec.section)
            except cfg.DuplicateOptError:
                raise ConfigError(
                    f"[{spec.section}] {opt.dest}: {dotted_name(spec.manager_class)} defines "
                    "this option differently from the running one; restart the supervisor to "
                    "apply it"
                ) from None


def adopt_immutable_values(
    conf: cfg.ConfigOpts, fresh: cfg.ConfigOpts, added: list[ManagerSpec]
) -> None:
    """The immutable options of managers a reload adds take their validated values.

    oslo.config reads an immutable option from the files as they were at start, where a
    section added since does not exist: its workers would get the defaults. A manager's
    start is when its options take effect, so they are set here, before it forks.
    """
    for spec in added:
        for opt in spec.opts():
            if not opt.mutable:
                conf.set_override(opt.dest, fresh[spec.section][opt.dest], spec.section)


def refresh_manager_defaults(conf: cfg.ConfigOpts, specs: list[ManagerSpec]) -> None:
    """After a mutation: each [manager:NAME] option unset there follows [supervisor]'s value."""
    for spec in specs:
        register_manager_opts(conf, spec.name)


def known_opts(specs: list[ManagerSpec]) -> dict[tuple[str | None, str], cfg.Opt]:
    """The definitions of the options this supervisor declares, by (group, name), so that a
    reload's log shows the new value of each one that is not secret."""
    known: dict[tuple[str | None, str], cfg.Opt] = {}
    groups: list[tuple[str | None, list[cfg.Opt]]] = [
        (None, default_opts),
        (SUPERVISOR_GROUP, supervisor_opts + manager_common_opts()),
        *db.list_opts(),
    ]
    groups += [(spec.section, spec.opts()) for spec in specs]
    for group, opts in groups:
        for opt in opts:
            known[(group, opt.dest)] = opt
    return known


@contextlib.contextmanager
def warnings_on_stderr(program: str = PROJECT) -> Iterator[None]:
    """While a command reads its config, before logging is set up: each warning (an unknown
    key) is one line on stderr, `PROGRAM: warning: ...`; a reload logs them instead."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{program}: warning: %(message)s"))
    LOG.addHandler(handler)
    LOG.propagate = False
    try:
        yield
    finally:
        LOG.removeHandler(handler)
        LOG.propagate = True


def dotted_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
