"""Keeps list answers under the transport's message limit: pages end on a byte budget as well
as a count, and an item too large to send (old data) is sent shortened instead of failing."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, TypeVar

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from broker.rpc.decoding import map_value_field

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)

DEFAULT_PAGE_BYTES = 3 * 1024 * 1024
"""Byte budget of one page: safely under gRPC's 4 MiB default message limit."""
ITEM_OVERHEAD_BYTES = 8
"""Tag and length prefix of one repeated item, at most."""
SHORTENED_TEXT_CHARS = 4096
"""What is kept of a long text in an item shortened to fit."""
TRUNCATION_MARK = "…[truncated]"


def page_bytes_for(max_message_bytes: int) -> int:
    """The page budget for a transport limit: three quarters of it, at most the default."""
    return max(1024, min(DEFAULT_PAGE_BYTES, max_message_bytes * 3 // 4))


def _shorten_texts(message: Message) -> None:
    for field, value in message.ListFields():
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            map_value = map_value_field(field)
            if map_value is not None:
                text_values = map_value.type == FieldDescriptor.TYPE_STRING
                for key in list(value):
                    if text_values:
                        value[key] = _shortened(value[key])
                    else:
                        _shorten_texts(value[key])
            elif field.is_repeated:
                for item in value:
                    _shorten_texts(item)
            else:
                _shorten_texts(value)
        elif field.type == FieldDescriptor.TYPE_STRING:
            if field.is_repeated:
                value[:] = [_shortened(v) for v in value]
            else:
                setattr(message, field.name, _shortened(value))
        elif field.type == FieldDescriptor.TYPE_BYTES and len(value) > SHORTENED_TEXT_CHARS:
            if field.is_repeated:
                value[:] = [v[:SHORTENED_TEXT_CHARS] for v in value]
            else:
                setattr(message, field.name, value[:SHORTENED_TEXT_CHARS])


def _shortened(text: str) -> str:
    if len(text) <= SHORTENED_TEXT_CHARS:
        return text
    return text[:SHORTENED_TEXT_CHARS] + TRUNCATION_MARK


def fit(message: M, max_bytes: int) -> M:
    """`message` if it fits `max_bytes`, else a copy with long texts shortened, then (if still
    too large) its largest message fields cleared one by one until it fits."""
    if message.ByteSize() <= max_bytes:
        return message
    copy = type(message)()
    copy.CopyFrom(message)
    _shorten_texts(copy)
    while copy.ByteSize() > max_bytes:
        fields = [
            (field, value)
            for field, value in copy.ListFields()
            if field.type == FieldDescriptor.TYPE_MESSAGE or field.is_repeated
        ]
        if not fields:
            break
        largest = max(fields, key=lambda fv: _field_bytes(fv[1]))
        copy.ClearField(largest[0].name)
    log.warning(
        "item shortened to fit a message type=%s bytes=%d", type(message).__name__, copy.ByteSize()
    )
    return copy


def _field_bytes(value: Any) -> int:
    if isinstance(value, Message):
        return value.ByteSize()
    if isinstance(value, str | bytes):
        return len(value)
    try:
        items = list(value.values()) if hasattr(value, "values") else list(value)
    except TypeError:
        return 0
    return sum(_field_bytes(v) for v in items)


def bounded_page(
    items: Sequence[M], resume_tokens: Sequence[str], next_page_token: str, max_bytes: int
) -> tuple[list[M], str]:
    """The items that fit `max_bytes` (at least one) and the token of the next page.

    `resume_tokens[i]` resumes a listing right after `items[i]`; without them (a store that
    gives none) the page cannot be cut, and only over-large items are shortened.
    """
    kept: list[M] = []
    total = 0
    cuttable = len(resume_tokens) == len(items)
    for i, item in enumerate(items):
        item = fit(item, max_bytes - ITEM_OVERHEAD_BYTES)
        size = item.ByteSize() + ITEM_OVERHEAD_BYTES
        if kept and cuttable and total + size > max_bytes:
            return kept, resume_tokens[i - 1]
        kept.append(item)
        total += size
    return kept, next_page_token
