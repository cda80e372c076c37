"""Hypothesis strategies over the raw wire: protobuf messages with arbitrary field values,
built from the services' descriptors, and the client methods to send them to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

from computenet.v1 import federation_service_pb2, job_service_pb2, rebalance_service_pb2
from topology import default_topology

_F = FieldDescriptor
MAX_DEPTH = 4


@dataclass(frozen=True)
class Method:
    """One client method as the wire sees it."""

    path: str
    """`/computenet.v1.JobService/ListJobs`."""
    request: Descriptor
    """The request message's descriptor."""
    server_streaming: bool

    def __str__(self) -> str:
        return self.path.rsplit(".", 1)[-1]


CLIENT_METHODS: tuple[Method, ...] = tuple(
    Method(f"/{service.full_name}/{m.name}", m.input_type, m.server_streaming)
    for module in (job_service_pb2, federation_service_pb2, rebalance_service_pb2)
    for service in module.DESCRIPTOR.services_by_name.values()
    for m in service.methods
)


def _known_strings() -> list[str]:
    topo = default_topology()
    sites = [s.id for s in topo.sites][:4]
    return [*sites, "a100", "a800", "training", "inference", "shanghai", "beijing", ""]


KNOWN_STRINGS = _known_strings()

_I32 = st.integers(-(2**31), 2**31 - 1)
_I64 = st.integers(-(2**63), 2**63 - 1)
_INTS: dict[int, st.SearchStrategy[int]] = {
    **dict.fromkeys((_F.TYPE_INT32, _F.TYPE_SINT32, _F.TYPE_SFIXED32), _I32),
    **dict.fromkeys((_F.TYPE_UINT32, _F.TYPE_FIXED32), st.integers(0, 2**32 - 1)),
    **dict.fromkeys((_F.TYPE_INT64, _F.TYPE_SINT64, _F.TYPE_SFIXED64), _I64),
    **dict.fromkeys((_F.TYPE_UINT64, _F.TYPE_FIXED64), st.integers(0, 2**64 - 1)),
}

_TEXT = st.one_of(
    st.sampled_from(KNOWN_STRINGS),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=24),
)


def _scalar(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.type in _INTS:
        return st.one_of(st.sampled_from([0, 1, 2, 100]), _INTS[field.type])
    if field.type == _F.TYPE_DOUBLE:
        return st.floats()
    if field.type == _F.TYPE_FLOAT:
        return st.floats(width=32)
    if field.type == _F.TYPE_BOOL:
        return st.booleans()
    if field.type == _F.TYPE_STRING:
        return _TEXT
    if field.type == _F.TYPE_BYTES:
        return st.binary(max_size=24)
    if field.type == _F.TYPE_ENUM:
        assert field.enum_type is not None
        known = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(known), st.integers(-(2**31), 2**31 - 1))
    assert field.message_type is not None
    return messages(field.message_type, depth + 1)


def _field(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    entry = field.message_type
    if entry is not None and entry.GetOptions().map_entry:
        key = _scalar(entry.fields_by_name["key"], depth)
        value = _scalar(entry.fields_by_name["value"], depth)
        return st.dictionaries(key, value, max_size=3)
    if field.is_repeated:
        return st.lists(_scalar(field, depth), max_size=3)
    return _scalar(field, depth)


def messages(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Messages of `descriptor` with any subset of fields set to arbitrary values."""
    cls = message_factory.GetMessageClass(descriptor)
    if depth >= MAX_DEPTH:
        return st.just(cls())
    optional = {
        f.name: st.deferred(lambda f=f: _field(f, depth))  # type: ignore[misc]
        for f in descriptor.fields
    }
    return st.fixed_dictionaries({}, optional=optional).map(lambda values: _build(cls, values))


def _build(cls: type[Message], values: dict[str, Any]) -> Message:
    message = cls()
    for name, value in values.items():
        field = cls.DESCRIPTOR.fields_by_name[name]
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            target = getattr(message, name)
            for k, v in value.items():
                if isinstance(v, Message):
                    target[k].CopyFrom(v)
                else:
                    target[k] = v
        elif field.is_repeated:
            getattr(message, name).extend(value)
        elif isinstance(value, Message):
            getattr(message, name).CopyFrom(value)
        else:
            setattr(message, name, value)
    return message
