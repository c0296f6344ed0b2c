r"""Values between ClickHouse text and the proto ``Value`` message.

Decoding reads ``TabSeparated`` output, one field at a time; encoding writes
``Values``-format literals for ``INSERT ... FORMAT Values`` and the text form
of server-side query parameters. Every converter is built once per column
type (:func:`decoder_for`, :func:`encoder_for`) and then applied per value.
Decoders fill ``Value`` messages in place, inside the response that will be
sent (:func:`rows_decoder`).

This module gathers the public names; the work is done in
:mod:`sidecar.tsv` (escapes, quoted literals), :mod:`sidecar.instants`,
:mod:`sidecar.decoding` and :mod:`sidecar.rows` (TSV to ``Value``),
:mod:`sidecar.plain_text` and :mod:`sidecar.encoding` (``Value`` to text).

What the engines print, as observed on ClickHouse 18.16.1 (HTTP) and on chdb
(ClickHouse 26.9), and what the decoders make of it:

- Escaping is identical. A top-level String, FixedString or Enum field is
  TSV-escaped: ``\\ \' \t \n \r \0 \b \f``, other bytes raw (non-UTF-8 too).
  Array, Tuple and Map fields are printed in quoted-literal syntax and are
  *not* escaped a second time: ``['a\'b','c\\d','e\tf']`` is exactly what
  arrives. Header type names are TSV-escaped: ``DateTime(\'UTC\')``.
- NULL is ``\N`` at the top level and bare ``NULL`` inside composites; the
  string ``'NULL'`` stays quoted, so the two never mix.
- 18.16 prints day 0 as ``0000-00-00`` and instant 0 as
  ``0000-00-00 00:00:00``; both decode to the epoch. Modern servers print
  ``1970-01-01``.
- 18.16's calendar ends in 2105: a later Date prints as ``0000-00-00`` and
  a later DateTime wraps (4294967295 prints as ``1970-01-01 06:28:15``).
  Such values cannot be read back from 18.16.
- 18.16 pads Decimal fractions to the scale (``-12.3400``); modern servers
  drop trailing zeros (``-12.34``). ``decimal_value`` keeps the printed text.
- 18.16 has no Bool (``1 = 1`` is UInt8 ``1``), no Map, no named tuples, no
  IPv4/IPv6, Date32, DateTime64, Int128/256, and no
  ``date_time_output_format``: DateTime arrives as local wall-clock text in
  the column's zone, read here with zoneinfo. At a daylight-saving fall-back
  the repeated hour is ambiguous in that text; it is read as the first
  occurrence.
- With ``date_time_output_format='unix_timestamp'`` (modern), DateTime is
  epoch seconds, and DateTime64 is ``seconds.fraction`` with exactly
  ``precision`` digits, quoted inside composites. For instants strictly
  between -1 s and 0, ClickHouse 26.9 prints a broken fraction whose digits
  are ``'0' + d`` for negative ``d`` (-0.5 s at precision 3 is ``0.+00``,
  -1 ns at precision 9 is ``0.00000000/``, and quotes can appear). The
  DateTime64 decoder reverses that.

Encoding writes DateTime as bare epoch seconds and DateTime64 as bare
``seconds.fraction``: both servers read those exactly in ``Values``, at the
top level and inside composites. Query parameters are different (modern
servers only): a short epoch number such as ``100`` is rejected and
``-0.5`` is read as ``+0.5``, so :func:`param_text` writes instants closer
than ``_PARAM_EPOCH_MIN`` seconds to 1970 as wall-clock text.
"""

from __future__ import annotations

from sidecar.decoding import Decoder, decoder_for
from sidecar.encoding import Encoder, encode_row, encoder_for, param_text
from sidecar.plain_text import EncodeError
from sidecar.rows import Rows, RowsDecoder, header_decoders, rows_decoder
from sidecar.tsv import DecodeError

__all__ = [
    "DecodeError",
    "Decoder",
    "EncodeError",
    "Encoder",
    "Rows",
    "RowsDecoder",
    "decoder_for",
    "encode_row",
    "encoder_for",
    "header_decoders",
    "param_text",
    "rows_decoder",
]
