"""The canonical encoding is one text whatever path writes it: the direct writer of flat records gives exactly the
bytes of the generic JSON walk, for every command and event a session and a whole trading day produce, and decoding
gives back an equal record."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange import codec
from exchange.commands import CancelAll
from exchange.engine import Engine
from tests.exchange.factories import START_US, RandomSession, absolute_expiry
from tests.exchange.test_engine_determinism import instruments, live
from tests.exchange.trading_day import run_day

GENERIC = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True).encode


def generic_bytes(record: object) -> bytes:
    return GENERIC(codec.to_plain(record)).encode("ascii")


def session_records(seed: int, count: int) -> list[object]:
    engine = Engine()
    session = RandomSession(seed, instruments(), call_phases=True, live_orders=lambda: live(engine))
    records: list[object] = []
    now = START_US
    seq = 0
    for command in session.opening():
        seq += 1
        records.append(command)
        records.extend(engine.apply(seq, now, command))
    for _ in range(count):
        pause, command = session.next()
        now += pause
        seq += 1
        command = absolute_expiry(command, now)
        records.append(command)
        records.extend(engine.apply(seq, now, command))
    return records


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_record_of_a_random_session_encodes_as_the_generic_walk_does(seed: int) -> None:
    for record in session_records(seed, 1_500):
        assert codec.encode(record) == generic_bytes(record), record


def test_every_record_of_a_trading_day_encodes_as_the_generic_walk_does_and_decodes_back() -> None:
    day = run_day()
    records = [r for step in day.steps for r in (step.command, *step.events)]
    assert records
    for record in records:
        encoded = codec.encode(record)
        assert encoded == generic_bytes(record), record
    for step in day.steps:
        assert codec.decode(codec.encode(step.command)) == step.command


@given(text=st.text(max_size=40))
def test_any_text_in_a_field_is_escaped_as_json_escapes_it(text: str) -> None:
    command = CancelAll(text, None)

    assert codec.encode(command) == generic_bytes(command)
    assert codec.decode(codec.encode(command)) == command
