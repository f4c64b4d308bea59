"""Settings and the command line. Each concept's module declares its own settings class, whose fields carry their
--help text (`setting`) and whose `check` refuses its own bad values: gift/loss.py the baselines', gift/tasks.py the
task variants', gift/memory.py the memory options, gift/runs.py the bookkeeping. train.py's Config is the method's
settings on top of them all.

    cfg = parse_config(Config, argv)   # --key=value or --key value; --help: the method's settings, --help-all: all
    check_config(cfg)                  # every class's check(), then: int settings >= 0 unless a check said otherwise

A leaf module: it imports nothing from gift/.
"""
import argparse
import difflib
import math
import sys
from dataclasses import MISSING, field, fields


def setting(default, help, section=None, resumable=False):
    """A Config field with its --help text; `section` starts a group of settings in --help. resumable: the setting
    does not change what a run computes (a thread count, a log interval), so --resume may change it."""
    return field(default=default, metadata=dict(help=help, section=section, resumable=resumable))


def resumable(config_cls):
    """The names of the settings that may differ when a run resumes (declared with resumable=True)."""
    return {f.name for f in fields(config_cls) if f.metadata.get("resumable")}


# ----------------------------------------------------------------------------------------------------------------
# checks: each settings class calls `require` from its own check(cfg)


def require(cfg, choices=None, at_least=None, positive=(), within=None):
    """One error line for the first setting out of range: choices {key: allowed}, at_least {key: low} for int
    settings (the others must be >= 0, check_config), positive (keys that must be > 0), within {key: (low, high)}
    inclusive."""
    for key, allowed in (choices or {}).items():
        if getattr(cfg, key) not in allowed:
            raise SystemExit(f"error: --{key}={getattr(cfg, key)!r} must be one of {tuple(allowed)}")
    for key, low in (at_least or {}).items():
        if getattr(cfg, key) < low:
            raise SystemExit(f"error: --{key}={getattr(cfg, key)} must be >= {low}"
                             + (" (a group of 1 has no spread to learn from)" if key == "group_size" else ""))
    for key in positive:
        if not getattr(cfg, key) > 0:
            raise SystemExit(f"error: --{key}={getattr(cfg, key)} must be > 0")
    for key, (low, high) in (within or {}).items():
        if not low <= getattr(cfg, key) <= high:
            raise SystemExit(f"error: --{key}={getattr(cfg, key)} must be in [{low}, {high:.3g}]")


def check_config(cfg):
    """Every settings class's own check(cfg), bases first; then any int or float setting below 0 is refused (the
    checks above name the ones that must be larger)."""
    for cls in reversed(type(cfg).__mro__):
        if "check" in cls.__dict__:
            cls.check(cfg)
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if type(f.default) in (int, float) and not (value >= 0 and (type(value) is int or math.isfinite(value))):
            raise SystemExit(f"error: --{f.name}={value} must be >= 0")


# ----------------------------------------------------------------------------------------------------------------
# the command line: argparse built from the dataclass, the method's settings first


def _typed(kind, key):
    """argparse type for a field: int, float, str or bool (true/false/1/0); a bad value names the setting."""
    def parse(value):
        try:
            if kind is bool:
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError
                return value.lower() in ("true", "1")
            return kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--{key}={value!r} is not a valid {kind.__name__}") from None
    return parse


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage block: "error: <what is wrong>"
        raise SystemExit(f"error: {message.split(': ', 1)[1] if message.startswith('argument ') else message}")


def config_parser(config_cls, description="", everything=True, prog="python train.py"):
    """An argparse parser with one --key option per field of config_cls, in groups, defaults shown. everything=False
    shows only config_cls's own fields in --help (the others still parse) and says how to see the rest."""
    own = set(config_cls.__dict__.get("__annotations__", {}))
    rest = len([f for f in fields(config_cls) if f.name not in own])
    epilog = None if everything or not rest else (f"{rest} more settings (the baselines' options, task variants, "
                                                  f"memory, bookkeeping): {prog} --help-all")
    p = _Parser(prog=prog, description=description, allow_abbrev=False, epilog=epilog,
                usage=f"{prog} [--key=value ...]   (or --key value; a bare --flag sets a bool to true)",
                formatter_class=lambda prog: argparse.RawDescriptionHelpFormatter(prog, max_help_position=26,
                                                                                  width=120))
    p.add_argument("--help-all", action="store_true", help="list every setting, not only the method's")
    group = p
    owners = [set(c.__dict__.get("__annotations__", {})) for c in config_cls.__mro__]
    rank = lambda f: next((i for i, names in enumerate(owners) if f.name in names), len(owners))  # noqa: E731
    for f in sorted(fields(config_cls), key=rank):  # a class's own settings first, then its bases' in order
        shown_here = everything or f.name in own
        if f.metadata.get("section") and shown_here:
            group = p.add_argument_group(f.metadata["section"])
        kind = type(f.default) if f.default is not MISSING else str
        shown = str(f.default).lower() if kind is bool else f.default
        extra = dict(nargs="?", const=True, metavar="true|false") if kind is bool else dict(metavar="")
        text = f"{f.metadata.get('help', '')} (default: {shown})" if shown_here else argparse.SUPPRESS
        (group if shown_here else p).add_argument(f"--{f.name}", type=_typed(kind, f.name), default=f.default,
                                                  help=text, **extra)
    return p


def parse_config(config_cls, argv, description="", prog="python train.py"):
    """config_cls(...) from --key=value / --key value arguments (dashes in keys read as underscores); an unknown key
    is one error line with the nearest key. --help lists config_cls's own settings, --help-all every setting."""
    argv = [a.split("=", 1)[0].replace("-", "_").replace("__", "--", 1) + a[len(a.split("=", 1)[0]):]
            if a.startswith("--") else a for a in argv]
    if "--help_all" in argv:
        config_parser(config_cls, description, everything=True, prog=prog).print_help()
        sys.exit(0)
    p = config_parser(config_cls, description, everything=False, prog=prog)
    args, unknown = p.parse_known_args(argv)
    if unknown:
        key = unknown[0].lstrip("-").split("=")[0]
        names = [f.name for f in fields(config_cls)]
        if not unknown[0].startswith("--"):
            raise SystemExit(f"error: unexpected argument {unknown[0]!r}; use --key=value")
        near = difflib.get_close_matches(key, names, n=1, cutoff=0.5)
        raise SystemExit(f"error: unknown config key {key!r}" + (f"; did you mean --{near[0]}?" if near else "")
                         + f" ({prog} --help-all lists every key with its default)")
    values = vars(args)
    values.pop("help_all")
    return config_cls(**values)
