"""The journal's hash chain: each record's hash covers the previous hash and the record's canonical bytes.

`hash_n = sha256(hash_{n-1} || record_bytes_n)` with a genesis hash of 32 zero bytes, where `record_bytes` is the
compact JSON array `[seq, ts_us, sender, command]` and `command` is the canonical encoding of the command
(`exchange.codec`). Anyone holding the journal rows can recompute the chain; publishing the head hash outside the
operator's reach makes any later rewrite of history detectable.
"""

from __future__ import annotations

import hashlib
import json
import json.encoder
from dataclasses import dataclass

GENESIS = bytes(32)


# `json.dumps(sender, ensure_ascii=True)` without its Python-level wrapper: the C function it ends in (same text).
_quote = json.encoder.encode_basestring_ascii


def record_bytes(seq: int, ts_us: int, sender: str, command: bytes) -> bytes:
    return b"[%d,%d,%s,%s]" % (seq, ts_us, _quote(sender).encode("ascii"), command)


def chain_hash(prev_hash: bytes, seq: int, ts_us: int, sender: str, command: bytes) -> bytes:
    return hashlib.sha256(prev_hash + record_bytes(seq, ts_us, sender, command)).digest()


@dataclass(frozen=True, slots=True)
class JournalRecord:
    seq: int
    ts_us: int
    sender: str
    command: bytes  # canonical bytes of the command
    prev_hash: bytes
    hash: bytes

    @classmethod
    def next(cls, prev_hash: bytes, seq: int, ts_us: int, sender: str, command: bytes) -> JournalRecord:
        return cls(seq, ts_us, sender, command, prev_hash, chain_hash(prev_hash, seq, ts_us, sender, command))
