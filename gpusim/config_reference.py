"""The configuration reference, generated from the schema in :mod:`gpusim.config` so that it cannot drift.

Every key of every section, with its type, unit, default, allowed range and the comment beside it in the
schema's source; the documentation site includes it (docs/configuration.md, through mkdocs_hooks.py), and a test
checks that no key is missing.
"""

import inspect
import re
import types
import typing

from pydantic import BaseModel

from gpusim import config
from gpusim.units import DIMENSIONS


def _comments(cls):
    """field name -> the comment beside it (or on the lines just above it) in the class's source."""
    notes = {}
    above = []
    for klass in reversed(cls.__mro__):
        if not (isinstance(klass, type) and issubclass(klass, BaseModel)) or klass in (BaseModel, config._Section):
            continue
        try:
            lines = inspect.getsource(klass).splitlines()
        except (OSError, TypeError):
            continue
        for line in lines[1:]:
            stripped = line.strip()
            if stripped.startswith("#"):
                above.append(stripped.lstrip("# ").strip())
                continue
            match = re.match(r"\s+(\w+)\s*:", line)
            if match and not stripped.startswith(("def ", "@", '"""')):
                trailing = line.split("  # ", 1)[1].strip() if "  # " in line else ""
                note = " ".join(part for part in (" ".join(above), trailing) if part)
                if note:
                    notes[match.group(1)] = note
            above = []
    return notes


def _number(value):
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def _constraints(metadata):
    """'0 to 1', 'at least 3', ... from a field's annotated-types constraints."""
    low = high = None
    low_open = high_open = False
    for item in metadata:
        for name, attr, is_open in (("Ge", "ge", False), ("Gt", "gt", True), ("Le", "le", False), ("Lt", "lt", True)):
            if type(item).__name__ == name:
                value = getattr(item, attr)
                if name in ("Ge", "Gt"):
                    low, low_open = value, is_open
                else:
                    high, high_open = value, is_open
    if low is None and high is None:
        return ""
    if low is not None and high is not None:
        return f"{'above' if low_open else 'from'} {_number(low)} {'below' if high_open else 'to'} {_number(high)}"
    if low is not None:
        return f"{'above' if low_open else 'at least'} {_number(low)}"
    return f"{'below' if high_open else 'at most'} {_number(high)}"


def _type_name(annotation):
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{value!r}`".replace("'", '"') for value in typing.get_args(annotation))
    if origin in (list, tuple):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        key, value = typing.get_args(annotation)
        return f"table of {_type_name(key)} → {_type_name(value)}"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation) if a is not type(None)) + " (optional)"
    if origin is typing.Annotated:
        return _type_name(typing.get_args(annotation)[0])
    return {int: "integer", float: "number", str: "text", bool: "true \\| false"}.get(annotation, getattr(
        annotation, "__name__", str(annotation)))


def _default(value):
    if isinstance(value, BaseModel):
        return "(section)"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if value is None:
        return "none"
    if isinstance(value, (list, tuple, dict)) and not value:
        return "empty"
    if isinstance(value, tuple):
        value = list(value)
    return f"`{value!r}`".replace("'", '"')


def _section_model(annotation):
    """The section class a field holds (directly, optionally, or as a list of entries), else None."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
        for inner in typing.get_args(candidate):
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return inner
    return None


def sections(model=config.Config, prefix=""):
    """(section key, model, [(key, field)]) for the model and every section under it, depth first."""
    leaves, nested = [], []
    for name, field in model.model_fields.items():
        inner = _section_model(field.annotation)
        if inner is not None:
            listed = typing.get_origin(field.annotation) is list
            nested.append((f"{prefix}{name}" + (".N" if listed else ""), inner))
        else:
            leaves.append((name, field))
    out = [(prefix.rstrip("."), model, leaves)]
    for key, inner in nested:
        out += sections(inner, key + ".")
    return out


def keys():
    """Every key the schema knows, dotted (lists of entries as ``dose.N.time``)."""
    return [f"{section}.{name}" if section else name for section, _model, leaves in sections() for name, _f in leaves]


def markdown():
    """The whole reference as Markdown: a table per section."""
    parts = []
    for section, model, leaves in sections():
        if not leaves:
            continue
        notes = _comments(model)
        title = f"`[{section}]`" if section else "top level"
        if section.endswith(".N"):
            title = f"`[[{section[:-2]}]]` (each entry)"
        parts.append(f"### {title}\n")
        doc = model.__dict__.get("__doc__")  # the section's own docstring, not pydantic's
        if doc and model is not config.Config:
            parts.append(inspect.cleandoc(doc).split("\n\n")[0].replace("\n", " ") + "\n")
        parts.append("| key | type | unit | default | allowed | note |\n|---|---|---|---|---|---|")
        for name, field in leaves:
            quantity = next((m for m in field.metadata if isinstance(m, config.Quantity)), None)
            unit = ""
            kind = _type_name(field.annotation)
            allowed = _constraints(field.metadata)
            if quantity is not None:
                internal, accepted, _example = DIMENSIONS[quantity.dimension]
                kind = quantity.dimension
                unit = f"{internal} (write {accepted})"
                allowed = "above 0" if quantity.positive else "0 or more" if quantity.non_negative else allowed
            note = notes.get(name, "").replace("|", "\\|")
            parts.append(f"| `{name}` | {kind} | {unit} | {_default(field.default)} | {allowed} | {note} |")
        parts.append("")
    return "\n".join(parts)
