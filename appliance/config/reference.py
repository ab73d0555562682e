"""The configuration schema as a list of key paths: for "did you mean" hints and the reference page.

:func:`schema_tables` walks :class:`~appliance.config.model.LayerwatchConfig` (nested models, lists
of tables such as ``[[cameras]]``, optional tables and ``type``-picked unions) and yields one
:class:`Table` per TOML table with its keys, types, defaults and descriptions.
:func:`render_reference` turns that into ``docs/configuration.md``; ``python -m
appliance.config.reference > docs/configuration.md`` regenerates it and
``tests/test_config_reference.py`` fails when the checked-in page is not current.
"""

from __future__ import annotations

import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from appliance.config.model import LayerwatchConfig


@dataclass
class Key:
    name: str
    type: str
    default: str
    description: str


@dataclass
class Table:
    """One TOML table; ``path`` uses ``cameras`` for ``[[cameras]]`` (list index left out)."""

    path: str
    title: str
    keys: list[Key] = field(default_factory=list)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation may hold (through Optional, unions, lists, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found.extend(_models_in(arg))
    return found


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    text = str(annotation).replace("typing.", "").replace("pathlib.", "")
    return text.replace("pydantic.types.", "").replace("NoneType", "None")


def _default(info: Any) -> str:
    if info.default_factory is not None:
        return "(table)" if _models_in(info.annotation) else "[]"
    if info.default is PydanticUndefined:
        return "(required)"
    return repr(info.default).replace("PosixPath(", "Path(")


def schema_tables(model: type[BaseModel] = LayerwatchConfig, path: str = "") -> Iterator[Table]:
    table = Table(
        path or "(top level)", (model.__doc__ or "").strip().splitlines()[0] if model.__doc__ else ""
    )
    nested: list[tuple[str, type[BaseModel]]] = []
    for name, info in model.model_fields.items():
        models = _models_in(info.annotation)
        child = f"{path}.{name}" if path else name
        if models:
            nested.extend((child, sub) for sub in models)
            continue
        description = (info.description or "").replace("\n", " ").replace("|", "\\|")
        table.keys.append(Key(name, _type_name(info.annotation), _default(info), description))
    if table.keys or not path:
        yield table
    seen: set[tuple[str, type[BaseModel]]] = set()
    for child, sub in nested:
        if (child, sub) not in seen:
            seen.add((child, sub))
            yield from schema_tables(sub, child)


def key_paths() -> dict[str, set[str]]:
    """Every key and table name -> the dotted tables it lives in (``window`` -> ``cameras.decision``)."""
    where: dict[str, set[str]] = {}
    for table in schema_tables():
        parent, _, leaf = table.path.rpartition(".")
        if table.path != "(top level)":
            where.setdefault(leaf, set()).add(parent or "(top level)")
        for key in table.keys:
            where.setdefault(key.name, set()).add(table.path)
    return where


def suggestion(bad_path: str) -> str | None:
    """``"did you mean cameras.decision?"`` for a key that lives in another table, else None."""
    *parents, leaf = bad_path.split(".")
    homes = key_paths().get(leaf, set())
    here = ".".join(p for p in parents if not p.isdigit()) or "(top level)"
    others = sorted(h for h in homes if h != here)
    if not others:
        return None
    full = [leaf if h == "(top level)" else f"{h}.{leaf}" for h in others]
    return "did you mean " + " or ".join(full) + "?"


def render_reference() -> str:
    lines = [
        "# Configuration reference",
        "",
        "Generated from the pydantic schema: `python -m appliance.config.reference > docs/configuration.md`.",
        "`tests/test_config_reference.py` fails when this page is not current. Unknown keys are rejected.",
        "`cameras` is a list of `[[cameras]]` tables; tables picked by `type` list every variant's keys.",
        "",
    ]
    for table in schema_tables():
        heading = table.path if table.path == "(top level)" else f"[{table.path}]"
        kind = next((key.default for key in table.keys if key.name == "type"), None)
        if kind and kind.startswith("'"):
            heading += f" with type = {kind}"
        lines += [f"## {heading}", ""]
        if table.title:
            lines += [table.title, ""]
        if table.keys:
            lines += ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
            for key in table.keys:
                lines.append(f"| `{key.name}` | `{key.type}` | `{key.default}` | {key.description} |")
            lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_reference(), end="")
