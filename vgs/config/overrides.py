"""The configuration as dicts and dotted keys: to_dict/from_dict, flatten, and overrides from the
command line or a search space, each value coerced to its key's type (or refused, naming the key)."""

from __future__ import annotations

import dataclasses
import difflib
import functools
from typing import Any, get_type_hints

from vgs.config.schema import Config, ConfigError
from vgs.log import get_logger

log = get_logger(__name__)

# ---------------------------------------------------------------- dict <-> dataclass


# keys that moved: the old name still works, with a warning that names the new one
RENAMED = {
    "model.mtl.asr_epochs": "model.pipeline.asr_epochs",
    "model.mtl.asr_patience": "model.pipeline.asr_patience",
    # "task" names a model family (vgs.tasks); what a family trains for is an objective
    "train.task_optimizers": "train.objective_optimizers",
    "model.mtl.task_layers": "model.mtl.objective_layers",
    "model.match.task_layers": "model.match.objective_layers",
}


def current_key(path: str) -> str:
    """A dotted key under its current name (a renamed key is mapped, with a deprecation warning)."""
    if path not in RENAMED:
        return path
    _warn_renamed(path)
    return RENAMED[path]


@functools.cache
def _warn_renamed(path: str) -> None:  # once per key and process: checkpoints load the old name too
    log.warning(f"{path} is deprecated: use {RENAMED[path]} (the old key still works, for now)")


def _renamed_sections(data: dict, prefix: str) -> dict:
    """A nested section with its renamed keys moved to their new place (old checkpoints, YAML)."""
    moved = {
        old: new for old, new in RENAMED.items() if old.startswith(prefix) and old.count(".") == prefix.count(".") + 1
    }
    out = data
    for old, new in moved.items():
        section, key = old[len(prefix) :].split(".")
        if isinstance(out.get(section), dict) and key in out[section]:
            current_key(old)
            new_section, new_key = new[len(prefix) :].split(".")
            out = {**out, section: {k: v for k, v in out[section].items() if k != key}}
            out[new_section] = {**out.get(new_section, {}), new_key: data[section][key]}
    return out


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(data: dict, cls: type = Config, prefix: str = "") -> Any:
    """Build a dataclass tree from a nested dict, refusing unknown keys."""
    if not isinstance(data, dict):
        raise ConfigError(f"config section '{prefix or '<root>'}' must be a mapping, got {data!r}")
    data = _renamed_sections(data, prefix)
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if key not in names:
            raise ConfigError(_unknown_key_message(path, flat_keys()))
        typ = hints[key]
        if dataclasses.is_dataclass(typ):
            kwargs[key] = from_dict(value, typ, prefix=f"{path}.")  # type: ignore[arg-type]
        else:
            kwargs[key] = coerce(path, value, typ)
    return cls(**kwargs)


def flatten(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """Config -> {'model.speech.layers': 2, ...}."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            out.update(flatten(value, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = value
    return out


def flat_keys() -> list[str]:
    return sorted(flatten(Config()))


def key_type(path: str) -> type:
    path = current_key(path)
    node: Any = Config
    parts = path.split(".")
    for i, part in enumerate(parts):
        hints = get_type_hints(node) if dataclasses.is_dataclass(node) else {}
        if part not in hints:
            raise ConfigError(_unknown_key_message(path, flat_keys()))
        node = hints[part]
        if dataclasses.is_dataclass(node) and i == len(parts) - 1:
            raise ConfigError(
                f"config key '{path}' is a section, not a value; use one of its "
                f"keys such as '{path}.{dataclasses.fields(node)[0].name}'"
            )
    return node


def coerce(path: str, value: Any, typ: type) -> Any:
    """Convert value (possibly a CLI string) to typ, or raise naming the key."""
    try:
        if typ is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.lower() in ("true", "1", "yes")
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            raise ValueError
        if typ is int:
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if typ is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if typ is str:
            if isinstance(value, (dict, list)):
                raise ValueError
            return str(value)
    except (TypeError, ValueError):
        pass
    else:
        return value
    raise ConfigError(f"config key '{path}' expects {typ.__name__}, got {value!r}")


def apply_overrides(cfg: Config, overrides: dict[str, Any]) -> Config:
    """Return a copy of cfg with dotted-path overrides applied (validated and coerced)."""
    flat = flatten(cfg)
    for path, value in overrides.items():
        path = current_key(path)
        flat[path] = coerce(path, value, key_type(path))
    return from_dict(unflatten(flat))


def unflatten(flat: dict[str, Any]) -> dict:
    nested: dict = {}
    for path, value in flat.items():
        node = nested
        *parents, leaf = path.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return nested


# Numbers a key's type admits but training cannot use: (key, test, what it must be).
def parse_cli_overrides(items: list[str]) -> dict[str, str]:
    """['model.latent=256', ...] -> {'model.latent': '256'}."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like key=value (e.g. model.speech.layers=3)")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def _unknown_key_message(path: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(path, valid, n=3, cutoff=0.6)
    if close:  # the suggestion is the answer; the whole list would bury it
        return f"unknown config key '{path}'; did you mean {', '.join(repr(c) for c in close)}?"
    section = path.rsplit(".", 1)[0] + "." if "." in path else ""
    near = [k for k in valid if section and k.startswith(section)]
    listed = f"keys under {section[:-1]}: {', '.join(near)}" if near else f"valid keys: {', '.join(valid)}"
    return f"unknown config key '{path}'; {listed}"


def differing_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    """The dotted keys at which two nested dicts (parsed YAML, config dicts) differ; a list or scalar
    compares whole."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for key in sorted({*a, *b}, key=str):
            out += (
                differing_keys(a.get(key), b.get(key), f"{prefix}{key}.")
                if key in a and key in b
                else [prefix + str(key)]
            )
        return out
    return [] if a == b else [prefix.rstrip(".") or "(the whole document)"]
