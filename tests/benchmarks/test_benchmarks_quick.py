"""The engine, pipeline and replay benchmarks run end to end on tiny sizes and end with their one JSON line; the
shared workload they measure is reproducible, refused nowhere, and means the same to the engine and the bare book."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.engine import BareBook, fresh_engine
from benchmarks.workload import (
    ACCOUNTS,
    CASH_PER_ACCOUNT,
    CURRENCY,
    SHARES_PER_ACCOUNT,
    SYMBOLS,
    TS0_US,
    count_outcomes,
    deep_book,
    mixed_commands,
    shift_order_ids,
)
from exchange.commands import PlaceOrder

ROOT = Path(__file__).resolve().parents[2]
FEW_ACCOUNTS = ACCOUNTS[:40]
JSON_KEYS = {"benchmark", "metric", "value", "unit", "baseline", "ratio"}


def run_benchmark(name: str, *args: str, database_url: str | None = None) -> dict[str, object]:
    env = dict(os.environ)
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    finished = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    last = json.loads(finished.stdout.strip().splitlines()[-1])
    assert set(last) == JSON_KEYS
    assert last["benchmark"] == name
    assert last["value"] > 0 and last["baseline"] > 0
    assert abs(last["ratio"] - last["value"] / last["baseline"]) < 1e-3 * max(1.0, last["ratio"])
    return last


def apply_mix(commands: list, preload: list = ()) -> tuple[int, int, int]:
    """(rejected, trades, resting orders) after the setup, `preload` and `commands` on a fresh engine."""
    engine, seq = fresh_engine(preload, FEW_ACCOUNTS)
    outcomes = []
    for command in commands:
        outcomes.append(engine.apply(seq, TS0_US + seq, command))
        seq += 1
    rejected, trades = count_outcomes(outcomes)
    return rejected, trades, len(engine.orders)


def test_the_mix_is_the_same_for_the_same_seed():
    assert mixed_commands(500, seed=7, accounts=FEW_ACCOUNTS) == mixed_commands(500, seed=7, accounts=FEW_ACCOUNTS)


def test_the_mix_has_its_shares_of_limits_cancels_marketables_and_amends():
    commands = mixed_commands(4_000, seed=3, accounts=FEW_ACCOUNTS)
    kinds = [type(c).__name__ for c in commands]
    marketable = sum(1 for c in commands if type(c) is PlaceOrder and (c.price is None or c.tif != "GTC"))
    assert 0.50 < (kinds.count("PlaceOrder") - marketable) / len(commands) < 0.70
    assert 0.20 < kinds.count("CancelOrder") / len(commands) < 0.30
    assert 0.06 < marketable / len(commands) < 0.14
    assert 0.02 < kinds.count("AmendOrder") / len(commands) < 0.08


def test_the_engine_refuses_no_command_of_the_mix_and_trades():
    rejected, trades, _ = apply_mix(mixed_commands(3_000, seed=11, accounts=FEW_ACCOUNTS))
    assert rejected == 0
    assert trades > 0


def test_the_bare_book_ends_with_the_engines_resting_orders_and_fills():
    commands = mixed_commands(3_000, seed=13, accounts=FEW_ACCOUNTS)
    _, trades, resting = apply_mix(commands)
    book = BareBook()
    for command in commands:
        book.apply(command)
    assert (book.trades, len(book.orders)) == (trades, resting)


def test_a_deep_book_away_from_the_touch_changes_nothing_but_the_order_ids():
    commands = mixed_commands(3_000, seed=17, accounts=FEW_ACCOUNTS)
    preload = deep_book(2_000, seed=19, accounts=FEW_ACCOUNTS)
    shallow = apply_mix(commands)
    deep = apply_mix(list(shift_order_ids(commands, len(preload))), preload)
    assert deep == (shallow[0], shallow[1], shallow[2] + len(preload))


def test_setup_lists_every_instrument_and_funds_every_account_with_cash_and_shares():
    engine, _ = fresh_engine((), FEW_ACCOUNTS)
    assert sorted(engine.instruments) == sorted(SYMBOLS)
    for account in FEW_ACCOUNTS:
        assert engine.balance(account, CURRENCY) == (CASH_PER_ACCOUNT, 0)
        assert all(engine.balance(account, symbol) == (SHARES_PER_ACCOUNT, 0) for symbol in SYMBOLS)


def test_the_engine_benchmark_ends_with_its_json_line():
    last = run_benchmark("engine", "--quick", "--commands", "2000", "--deep", "2000", "--accounts", "40")
    assert last["metric"] == "commands_per_s"


def test_the_pipeline_benchmark_ends_with_its_json_line(database_server_url):
    last = run_benchmark(
        "pipeline", "--quick", "--commands", "1500", "--paced-seconds", "0.5", "--batch-max", "500", "--concurrency", "200",
        "--accounts", "20", database_url=database_server_url,
    )
    assert last["metric"] == "committed_commands_per_s"


def test_the_replay_benchmark_ends_with_its_json_line(database_server_url):
    last = run_benchmark("replay", "--records", "1500", "--accounts", "20", database_url=database_server_url)
    assert last["metric"] == "recover_records_per_s"
