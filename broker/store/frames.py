"""Length-prefixed pickle frames: how the broker and its submission process talk."""

from __future__ import annotations

import pickle
import struct
from typing import Any

FRAME_HEADER = struct.Struct("!I")
"""Length prefix of every frame: the payload's size, 4 bytes big-endian."""


def encode_frame(message: Any) -> bytes:
    """One frame carrying `message`."""
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return FRAME_HEADER.pack(len(payload)) + payload


def decode_payload(payload: bytes) -> Any:
    """The message of a frame's payload (the bytes after its header)."""
    return pickle.loads(payload)


def read_frame(stream: Any) -> Any | None:
    """The next message from a blocking binary stream, or None at its end."""
    header = _read_exactly(stream, FRAME_HEADER.size)
    if header is None:
        return None
    (size,) = FRAME_HEADER.unpack(header)
    payload = _read_exactly(stream, size)
    return decode_payload(payload) if payload is not None else None


def _read_exactly(stream: Any, size: int) -> bytes | None:
    data = stream.read(size)
    return data if data is not None and len(data) == size else None
