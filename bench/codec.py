"""Typed-row decoding cost per row: the sidecar's codec vs. aiochclient's.

Run by hand (not a test)::

    PYTHONPATH=. /tmp/venv/bin/python bench/codec.py --rows 100000

For each column mix the same synthetic TabSeparated lines are decoded by

* sidecar: :func:`sidecar.codec.rows_decoder` appending into the ``rows``
  field of a ``QueryDataStreamResponse`` (what QueryDataStream sends);
* aiochclient lazy: ``RecordsFabric.new`` per line, which is all that
  ``ChClient.iterate`` does until a field is read;
* aiochclient decoded: the same, then every field read (``record[:]``).

aiochclient reads DateTime as wall-clock text, the sidecar (on modern
servers) as epoch seconds, so each side gets the lines its client would.
The best of ``--repeat`` runs is shown, in microseconds per row.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiochclient.records import RecordsFabric

from sidecar._proto.clickhouse.sidecar.v1 import sidecar_pb2 as pb
from sidecar.codec import header_decoders, rows_decoder


@dataclass(frozen=True)
class Mix:
    name: str
    types: list[str]
    ours: Callable[[int], bytes]
    theirs: Callable[[int], bytes]


def _ints(n: int) -> bytes:
    return b"%d\t%d\t%d\t%d" % (n * 7919, -n, n % 256, n * 31)


def _pair(n: int) -> bytes:
    return b"%d\tname-%d" % (n * 7919, n)


def _wide(n: int, stamp: bytes) -> bytes:
    text = b"\\N" if n % 3 == 0 else b"user %d" % n
    array = b"[%d,%d,%d]" % (n, n + 1, n + 2)
    return b"\t".join(
        [
            b"%d" % (n * 7919),
            b"%d" % -n,
            b"%r" % (n / 7),
            b"item-%d" % n,
            stamp,
            text,
            array,
            b"%d.%04d" % (n, n % 10000),
            b"2024-03-%02d" % (n % 28 + 1),
            b"ok" if n % 2 else b"failed",
        ]
    )


def _wide_epoch(n: int) -> bytes:
    return _wide(n, b"%d" % (1700000000 + n))


def _wide_text(n: int) -> bytes:
    return _wide(n, b"2023-11-14 22:13:%02d" % (n % 60))


MIXES = [
    Mix("4 x ints", ["UInt64", "Int64", "UInt8", "Int32"], _ints, _ints),
    Mix("UInt64+String", ["UInt64", "String"], _pair, _pair),
    Mix(
        "wide 10 mixed",
        [
            "UInt64",
            "Int32",
            "Float64",
            "String",
            "DateTime('UTC')",
            "Nullable(String)",
            "Array(UInt32)",
            "Decimal(18, 4)",
            "Date",
            "Enum8('ok' = 1, 'failed' = 2)",
        ],
        _wide_epoch,
        _wide_text,
    ),
]


def best_of(repeat: int, run: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def sidecar_run(mix: Mix, lines: list[bytes]) -> Callable[[], object]:
    names = [f"c{n}".encode() for n in range(len(mix.types))]
    types = [t.replace("'", "\\'").encode() for t in mix.types]
    _, decoders = header_decoders(names, types, "UTC", unix_timestamps=True)
    decode = rows_decoder(decoders)

    def run() -> object:
        message = pb.QueryDataStreamResponse()
        decode(message.rows, lines)
        return message

    return run


def aiochclient_run(
    mix: Mix, lines: list[bytes], *, read: bool
) -> Callable[[], object]:
    names = "\t".join(f"c{n}" for n in range(len(mix.types))).encode() + b"\n"
    fabric = RecordsFabric("\t".join(mix.types).encode() + b"\n", names)
    terminated = [line + b"\n" for line in lines]  # iterate yields whole lines

    def run() -> object:
        records = [fabric.new(line) for line in terminated]
        if read:
            for record in records:
                record[:]
        return records

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    print(
        f"{'mix':16} {'sidecar':>8} {'aioch lazy':>10} {'aioch read':>10} "
        f"{'vs lazy':>8} {'vs read':>8}   (µs/row)"
    )
    for mix in MIXES:
        ours = [mix.ours(n) for n in range(args.rows)]
        theirs = [mix.theirs(n) for n in range(args.rows)]
        runs = [
            sidecar_run(mix, ours),
            aiochclient_run(mix, theirs, read=False),
            aiochclient_run(mix, theirs, read=True),
        ]
        side, lazy, read = (best_of(args.repeat, r) / args.rows * 1e6 for r in runs)
        print(
            f"{mix.name:16} {side:8.3f} {lazy:10.3f} {read:10.3f} "
            f"{lazy / side:7.2f}x {read / side:7.2f}x"
        )


if __name__ == "__main__":
    main()
