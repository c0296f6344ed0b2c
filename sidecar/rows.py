"""Rows of a typed result, appended in place to a response's ``rows`` field.

:func:`header_decoders` reads the two header lines of
``TabSeparatedWithNamesAndTypes`` into columns and one decoder per column;
:func:`rows_decoder` turns data lines into ``Row`` messages added straight
to the repeated field that will be sent, so no message is built twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from google.protobuf.internal.containers import RepeatedCompositeFieldContainer

from sidecar._proto.clickhouse.sidecar.v1 import sidecar_pb2 as pb
from sidecar.decoding import Decoder, decoder_for
from sidecar.errors import RequestError
from sidecar.tsv import DecodeError, unescape

__all__ = ["Rows", "RowsDecoder", "header_decoders", "rows_decoder"]

Rows = RepeatedCompositeFieldContainer[pb.Row]
RowsDecoder = Callable[[Rows, Sequence[bytes]], None]


def header_decoders(
    names: Sequence[bytes],
    types: Sequence[bytes],
    server_timezone: str,
    *,
    unix_timestamps: bool,
) -> tuple[list[pb.Column], list[Decoder]]:
    """Columns and decoders from the two header lines, split on tabs.

    The header fields are TSV-escaped (``DateTime(\\'UTC\\')``).
    """
    if len(names) != len(types):
        raise DecodeError(f"{len(names)} column names but {len(types)} types")

    columns = [
        pb.Column(
            name=unescape(name).decode(errors="replace"),
            type=unescape(type_).decode(),
        )
        for name, type_ in zip(names, types, strict=True)
    ]
    return columns, [
        _column_decoder(c, server_timezone, unix_timestamps) for c in columns
    ]


def _column_decoder(
    column: pb.Column, server_timezone: str, unix_timestamps: bool
) -> Decoder:
    try:
        return decoder_for(
            column.type, server_timezone, unix_timestamps=unix_timestamps
        )
    except RequestError as error:
        raise RequestError(f"column {column.name!r}: {error}") from error


def rows_decoder(decoders: Sequence[Decoder]) -> RowsDecoder:
    """Decodes TSV lines (without newlines), appending one ``Row`` each.

    Raises :class:`DecodeError` when a line has the wrong number of fields
    or a field does not parse as its type; the rows before it stay added,
    the bad one does not.
    """
    count = len(decoders)
    fills = tuple(decoders)

    def decode(rows: Rows, lines: Sequence[bytes]) -> None:
        add_row = rows.add
        for line in lines:
            fields = line.split(b"\t")
            if len(fields) != count:
                raise DecodeError(f"expected {count} fields, got {len(fields)}")

            add = add_row().values.add
            try:
                for fill, field in zip(fills, fields, strict=False):
                    fill(add(), field)
            except (ValueError, IndexError) as error:
                del rows[-1]
                raise DecodeError(f"cannot decode row: {error}") from error

    return decode
