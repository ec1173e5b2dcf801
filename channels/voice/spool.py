"""A call's spooled state: versioned JSON of the IVR flow's plain data (its report included), written durably.

`state.json` in a call's spool directory is what a crash leaves for `Calls.recover()`:
    {"version": 1, "call_id": "...", "caller_id": "...", "saved_at": 1764430000.0, "flow": {...}}
`flow` holds every attribute of the `Flow` but its settings (they come from the configuration, not the spool),
encoded generically, so a field added to the flow is saved and restored with no change here:
- JSON scalars, lists and string-keyed dicts as they are;
- a dataclass as {"__type__": "module:Class", field: value, ...}, an Enum as {"__enum__": ..., "value": ...},
  a tuple as {"__tuple__": [...]}; only classes of `channels.voice` and `ticketing.contact` are ever rebuilt.
Reading is strict: a file that does not parse, an unknown `version`, a class or attribute this code does not
know raise `SpoolError`, and the caller quarantines the spool rather than guessing (never deletes it).
An attribute the saved flow lacks (the flow gained a field since) keeps the value a new `Flow` starts with.

Writing is atomic and durable: a temporary file, fsync, rename over the old state, fsync of the directory.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .flow import Flow, FlowSettings

VERSION = 1
STATE_FILE = "state.json"
_ALLOWED = ("channels.voice.", "ticketing.contact")


class SpoolError(ValueError):
    """A spooled state this code cannot read back faithfully."""


@dataclass
class SavedCall:
    call_id: str
    caller_id: str | None
    flow: Flow
    saved_at: float


# -- encoding ----------------------------------------------------------------------------------------------------
def _allowed(cls: type) -> bool:
    return cls.__module__.startswith(_ALLOWED) or cls.__module__ == "ticketing.contact"


def _name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def encode(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)) and not isinstance(value, enum.Enum):
        return value
    if isinstance(value, enum.Enum):
        if not _allowed(type(value)):
            raise TypeError(f"cannot spool an enum of {_name(type(value))}")
        return {"__enum__": _name(type(value)), "value": encode(value.value)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if not _allowed(type(value)):
            raise TypeError(f"cannot spool a {_name(type(value))}")
        return {"__type__": _name(type(value)), **{f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}}
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) and not k.startswith("__") for k in value):
            raise TypeError("cannot spool a dict whose keys are not plain strings")
        return {k: encode(v) for k, v in value.items()}
    raise TypeError(f"cannot spool a {type(value).__name__}")


def _resolve(name: str) -> type:
    module, _, qualname = name.partition(":")
    if not (module.startswith(_ALLOWED) or module == "ticketing.contact") or not qualname:
        raise SpoolError(f"a spooled class outside the voice channel: {name!r}")
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise SpoolError(f"unknown spooled class {name!r}") from e
    if not isinstance(obj, type):
        raise SpoolError(f"{name!r} is not a class")
    return obj


def decode(value: Any) -> Any:
    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tuple__" in value:
        return tuple(decode(v) for v in value["__tuple__"])
    if "__enum__" in value:
        cls = _resolve(value["__enum__"])
        try:
            return cls(decode(value["value"]))
        except (ValueError, KeyError, TypeError) as e:
            raise SpoolError(f"bad value for {value['__enum__']}") from e
    if "__type__" in value:
        cls = _resolve(value["__type__"])
        if not dataclasses.is_dataclass(cls):
            raise SpoolError(f"{value['__type__']} is not a dataclass")
        data = {k: decode(v) for k, v in value.items() if k != "__type__"}
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(data) - set(fields)
        if unknown:
            raise SpoolError(f"{value['__type__']} has no field(s) {sorted(unknown)}")
        try:
            obj = cls(**{k: v for k, v in data.items() if fields[k].init})
            for k, v in data.items():
                if not fields[k].init:
                    object.__setattr__(obj, k, v)
        except TypeError as e:
            raise SpoolError(f"cannot rebuild {value['__type__']}: {e}") from e
        return obj
    return {k: decode(v) for k, v in value.items()}


# -- the flow --------------------------------------------------------------------------------------------------
def flow_state(flow: Flow) -> dict[str, Any]:
    """The flow's plain data: every attribute but its settings."""
    return {k: encode(v) for k, v in vars(flow).items() if not isinstance(v, FlowSettings)}


def restore_flow(state: dict[str, Any], settings: FlowSettings) -> Flow:
    flow = Flow(settings)
    known = vars(flow)
    unknown = set(state) - set(known)
    if unknown:
        raise SpoolError(f"the flow has no attribute(s) {sorted(unknown)}")
    for k, v in state.items():
        setattr(flow, k, decode(v))
    return flow


def dumps(call_id: str, caller_id: str | None, flow: Flow) -> bytes:
    doc = {"version": VERSION, "call_id": call_id, "caller_id": caller_id, "saved_at": time.time(), "flow": flow_state(flow)}
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def loads(data: bytes, settings: FlowSettings) -> SavedCall:
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SpoolError(f"not JSON: {e}") from e
    if not isinstance(doc, dict):
        raise SpoolError("not a spooled call")
    if doc.get("version") != VERSION:
        raise SpoolError(f"unknown spool version {doc.get('version')!r} (this gateway reads {VERSION})")
    call_id, caller_id, state = doc.get("call_id"), doc.get("caller_id"), doc.get("flow")
    if not isinstance(call_id, str) or not isinstance(state, dict) or not (caller_id is None or isinstance(caller_id, str)):
        raise SpoolError("a spooled call needs call_id and flow")
    return SavedCall(call_id, caller_id, restore_flow(state, settings), float(doc.get("saved_at") or 0.0))


# -- durable writes ----------------------------------------------------------------------------------------------
def write_durably(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that after a crash it holds either the old or the new bytes, whole."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
