"""Typed records: pydantic models generated from an ``.avsc``, or hand-written ones checked
against it, so a domain's code and its Avro contract cannot drift apart unnoticed.

* :func:`model_from_schema` builds a model class from a record schema (nested records
  become nested models; docs become field descriptions; ``"pii": true`` is kept in the
  field's JSON schema extras).
* :func:`check_model` compares a hand-written model with the schema and raises
  :class:`SchemaError` naming every field that does not line up.
"""

from __future__ import annotations

import copy
import datetime as dt
import decimal
import enum
import types
import typing
import uuid
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from mesh_stream.errors import SchemaError
from mesh_stream.schema.codec import INT_RANGE, LONG_RANGE, SchemaLike, parse_schema

__all__ = ["avro_kind", "check_model", "model_from_schema", "source_schema"]

_TIMESTAMPS = ("timestamp-millis", "timestamp-micros", "local-timestamp-millis",
               "local-timestamp-micros")  # fmt: skip


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


class _Builder:
    """Turns fastavro-parsed schema nodes into Python annotations, one model per record."""

    def __init__(self, named: Mapping[str, Any]) -> None:
        self.named = named
        self.models: dict[str, type[BaseModel]] = {}
        #: Records being built, outermost first: one met again holds itself.
        self.building: list[str] = []

    def annotation(self, schema: Any) -> Any:
        if isinstance(schema, str):
            if schema in self.named:
                return self.annotation(self.named[schema])
            return self._primitive(schema)
        if isinstance(schema, list):
            branches = [branch for branch in schema if branch != "null"]
            inner: Any = (
                self.annotation(branches[0])
                if len(branches) == 1
                else typing.Union[tuple(self.annotation(b) for b in branches)]  # noqa: UP007
            )
            return inner | None if "null" in schema else inner
        logical = schema.get("logicalType")
        kind = schema.get("type")
        if logical in _TIMESTAMPS:
            return dt.datetime
        if logical == "date":
            return dt.date
        if logical in ("time-millis", "time-micros"):
            return dt.time
        if logical == "decimal":
            return Annotated[
                decimal.Decimal,
                Field(max_digits=schema.get("precision"), decimal_places=schema.get("scale", 0)),
            ]
        if logical == "uuid":
            return uuid.UUID
        if kind == "record":
            return self.model(schema)
        if kind == "enum":
            return Literal[tuple(schema["symbols"])]
        if kind == "fixed":
            size = schema["size"]
            return Annotated[bytes, Field(min_length=size, max_length=size)]
        if kind == "array":
            return list[self.annotation(schema["items"])]  # type: ignore[misc]
        if kind == "map":
            return dict[str, self.annotation(schema["values"])]  # type: ignore[misc]
        return self.annotation(kind)

    @staticmethod
    def _primitive(kind: str) -> Any:
        if kind == "int":
            return Annotated[int, Field(ge=INT_RANGE[0], le=INT_RANGE[1], strict=True)]
        if kind == "long":
            return Annotated[int, Field(ge=LONG_RANGE[0], le=LONG_RANGE[1], strict=True)]
        simple: dict[str, Any] = {
            "null": type(None),
            "boolean": Annotated[bool, Field(strict=True)],
            "float": float,
            "double": float,
            "string": str,
            "bytes": bytes,
        }
        if kind not in simple:
            raise SchemaError(f"unknown Avro type {kind!r}")
        return simple[kind]

    def model(self, schema: Mapping[str, Any]) -> type[BaseModel]:
        name = str(schema["name"])
        if name in self.models:
            return self.models[name]
        if name in self.building:  # h53: a RecursionError
            cycle = " -> ".join(
                _short(n) for n in [*self.building[self.building.index(name) :], name]
            )
            raise SchemaError(
                f"{name}: a record that holds itself ({cycle}) cannot become a pydantic model "
                f"here; publish and read this product as dicts"
            )
        self.building.append(name)
        try:
            return self._record_model(name, schema)
        finally:
            self.building.pop()

    def _record_model(self, name: str, schema: Mapping[str, Any]) -> type[BaseModel]:
        fields: dict[str, Any] = {}
        for item in schema["fields"]:
            _check_field_name(name, str(item["name"]))
            extra = {"pii": True} if item.get("pii") else None
            options: dict[str, Any] = {"description": item.get("doc")}
            if extra:
                options["json_schema_extra"] = extra
            if "default" in item:
                default = item["default"]
                if isinstance(default, (list, dict)):
                    options["default_factory"] = default.copy
                else:
                    options["default"] = default
            fields[item["name"]] = (self.annotation(item["type"]), Field(**options))
        model: type[BaseModel] = create_model(
            _short(name),
            __config__=ConfigDict(extra="forbid"),
            __doc__=schema.get("doc") or f"Record {name} (generated from its Avro schema).",
            **fields,
        )
        model.__avro_name__ = name  # type: ignore[attr-defined]
        self.models[name] = model
        return model


def _check_field_name(record: str, field: str) -> None:
    """A :class:`SchemaError` for a field name pydantic cannot take as a model field (h53: a
    leading ``_`` raised PydanticUserError, ``model_dump`` a ValueError)."""
    if field.startswith("_") or (field.startswith("model_") and hasattr(BaseModel, field)):
        raise SchemaError(
            f"{record}.{field}: the field name {field!r} is pydantic's own (a private name or "
            f"an attribute every model has), so it cannot become a model field; publish and "
            f"read this product as dicts"
        )


#: Where a generated model keeps the schema it was made from (see :func:`source_schema`).
_SOURCE_SCHEMA = "__mesh_source_schema__"


def model_from_schema(schema: SchemaLike) -> type[BaseModel]:
    """A pydantic model class for a record schema (JSON text or mapping); it remembers the
    schema, so a consumer given only the model reads with that schema (:func:`source_schema`)."""
    parsed = parse_schema(schema)
    if parsed.get("type") != "record":
        raise SchemaError(f"{parsed.get('name', 'schema')}: only record schemas become models")
    builder = _Builder(parsed.get("__named_schemas", {}))
    model = builder.model(parsed)
    # a copy: the caller's mapping changed later must not change what the model reads with
    setattr(model, _SOURCE_SCHEMA, schema if isinstance(schema, str) else copy.deepcopy(schema))
    return model


def source_schema(model: type[BaseModel]) -> SchemaLike | None:
    """The schema :func:`model_from_schema` made ``model`` (or the generated model it
    subclasses without adding fields) from; None for a hand-written model: the reader schema
    that model fits, whatever fields later versions add."""
    for klass in model.__mro__:
        found = klass.__dict__.get(_SOURCE_SCHEMA)
        if isinstance(found, (str, Mapping)) and isinstance(klass, type):
            same = issubclass(klass, BaseModel) and klass.model_fields.keys() == (
                model.model_fields.keys()
            )
            return found if same else None
    return None


# -- checking a hand-written model ----------------------------------------------------------


def avro_kind(schema: Any, named: Mapping[str, Any]) -> set[str]:
    """The coarse kinds a schema node accepts (``int``, ``string``, ``record:Name``, ``null``…)."""
    if isinstance(schema, str):
        if schema in named:
            return avro_kind(named[schema], named)
        return {"int" if schema == "long" else "float" if schema == "double" else schema}
    if isinstance(schema, list):
        kinds: set[str] = set()
        for branch in schema:
            kinds |= avro_kind(branch, named)
        return kinds
    logical = schema.get("logicalType")
    if logical in _TIMESTAMPS:
        return {"timestamp"}
    if logical in ("date", "decimal", "uuid"):
        return {logical}
    if logical in ("time-millis", "time-micros"):
        return {"time"}
    kind = schema.get("type")
    if kind == "record":
        return {f"record:{schema['name']}"}
    if kind == "enum":
        return {"enum"}
    if kind == "fixed":
        return {"bytes"}
    if kind in ("array", "map"):
        return {kind}
    return avro_kind(kind, named)


def _python_kinds(annotation: Any) -> set[str]:
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _python_kinds(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        kinds: set[str] = set()
        for arg in typing.get_args(annotation):
            kinds |= _python_kinds(arg)
        return kinds
    if origin is Literal:
        return {"enum", "string"}
    if origin in (list, tuple, typing.Sequence, set, frozenset):
        return {"array"}
    if origin in (dict, typing.Mapping, Mapping):
        return {"map"}
    if annotation is type(None) or annotation is None:
        return {"null"}
    if isinstance(annotation, type):
        if issubclass(annotation, bool):
            return {"boolean"}
        if issubclass(annotation, enum.Enum):
            return {"enum", "string"}
        table: list[tuple[type, set[str]]] = [
            (int, {"int"}),
            (float, {"float"}),
            (str, {"string", "enum", "uuid"}),
            (bytes, {"bytes"}),
            (decimal.Decimal, {"decimal"}),
            (dt.datetime, {"timestamp"}),
            (dt.date, {"date"}),
            (dt.time, {"time"}),
            (uuid.UUID, {"uuid"}),
        ]
        for base, kinds in table:
            if issubclass(annotation, base):
                return kinds
        if issubclass(annotation, BaseModel):
            return {"record"}
    return {"any"}


def _compare(
    model: type[BaseModel], schema: Mapping[str, Any], named: Mapping[str, Any], path: str
) -> list[str]:
    problems: list[str] = []
    schema_fields = {item["name"]: item for item in schema["fields"]}
    for name, info in model.model_fields.items():
        where = f"{path}{name}"
        if name not in schema_fields:
            problems.append(f"{where}: the model has it, schema {schema['name']} does not")
            continue
        item = schema_fields[name]
        wanted = avro_kind(item["type"], named)
        have = _python_kinds(info.annotation)
        plain = {kind.split(":")[0] for kind in wanted}
        if "any" not in have and not (plain - {"null"}) <= have:
            problems.append(
                f"{where}: schema expects {' | '.join(sorted(wanted))}, the model declares "
                f"{getattr(info.annotation, '__name__', info.annotation)}"
            )
        if "null" in wanted and "null" not in have and "any" not in have:
            problems.append(f"{where}: schema allows null, the model field is not Optional")
        if info.is_required() and "default" in item:
            continue
        if not info.is_required() and "default" not in item and "null" not in wanted:
            problems.append(f"{where}: the model gives a default the schema does not have")
        nested = _nested_model(info.annotation)
        record = _record_of(item["type"], named)
        if nested is not None and record is not None:
            problems += _compare(nested, record, named, f"{where}.")
    for name, item in schema_fields.items():
        if name not in model.model_fields and "default" not in item:
            problems.append(f"{path}{name}: required by schema {schema['name']}, not in the model")
    return problems


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _nested_model(arg)
        if found is not None:
            return found
    return None


def _record_of(schema: Any, named: Mapping[str, Any]) -> Mapping[str, Any] | None:
    if isinstance(schema, str):
        return _record_of(named[schema], named) if schema in named else None
    if isinstance(schema, list):
        for branch in schema:
            found = _record_of(branch, named)
            if found is not None:
                return found
        return None
    if schema.get("type") == "record":
        record: Mapping[str, Any] = schema
        return record
    if schema.get("type") == "array":
        return _record_of(schema["items"], named)
    if schema.get("type") == "map":
        return _record_of(schema["values"], named)
    return None


def check_model(model: type[BaseModel], schema: SchemaLike) -> None:
    """Raise :class:`SchemaError` unless ``model`` has the schema's fields with fitting types."""
    parsed = parse_schema(schema)
    problems = _compare(model, parsed, parsed.get("__named_schemas", {}), "")
    if problems:
        raise SchemaError(
            f"model {model.__name__} does not match schema {parsed.get('name')}: "
            + "; ".join(problems)
        )
