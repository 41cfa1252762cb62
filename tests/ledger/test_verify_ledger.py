"""Verify proves the ledger sound: a zero trial balance per asset, balances equal to their legs, none negative."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from exchange.events import BalanceChanged
from ledger.entries import Bucket
from ledger.verify import verify
from tests.ledger.replay_history import History, Insider, history_database


@pytest.fixture(scope="module")
async def stored(database_server_url: str, migrated_template: str) -> AsyncIterator[tuple[str, History]]:
    async with history_database(database_server_url, migrated_template) as found:
        yield found


@pytest.fixture
def history(stored: tuple[str, History]) -> History:
    return stored[1]


@pytest.fixture
async def insider(stored: tuple[str, History]) -> AsyncIterator[Insider]:
    insider = await Insider.start(stored[0])
    yield insider
    await insider.undo()


async def account_id(insider: Insider, owner: str, bucket: str, asset: str) -> int:
    return await insider.conn.fetchval(
        "SELECT id FROM ledger_accounts WHERE owner = $1 AND bucket = $2 AND asset = $3", owner, bucket, asset
    )


async def test_an_untouched_ledger_has_no_imbalance_mismatch_or_negative(insider):
    report = await verify(insider.pool)
    assert (report.imbalances, report.mismatches, report.negatives) == ({}, (), ())


async def test_a_changed_cached_balance_shows_in_the_trial_balance_and_the_reconciliation(insider):
    alice = await account_id(insider, "alice", "available", "EUR")
    await insider.execute("UPDATE ledger_balances SET balance = balance + 500 WHERE account_id = $1", alice)
    report = await verify(insider.pool)
    assert report.imbalances == {"EUR": 500}
    [mismatch] = report.mismatches
    assert (mismatch.account.owner, mismatch.account.bucket, mismatch.asset) == ("alice", Bucket.AVAILABLE, "EUR")
    assert mismatch.cached == mismatch.from_legs + 500
    assert report.chain_break is None and not report.ok


async def test_a_changed_leg_amount_leaves_both_accounts_disagreeing_with_their_cache(insider, history):
    seq = history.seqs_with(BalanceChanged)[-1]  # alice's withdrawal: alice available -> @venue external
    await insider.execute("UPDATE ledger_legs SET amount = amount + 7 WHERE seq = $1", seq)
    report = await verify(insider.pool)
    moved = {(m.account.owner, m.account.bucket.value): m.cached - m.from_legs for m in report.mismatches}
    assert moved == {("alice", "available"): 7, ("@venue", "external"): -7}
    assert report.imbalances == {}  # the cache still sums to zero: only the reconciliation sees it


async def test_a_negative_participant_balance_is_reported(insider):
    carol = await account_id(insider, "carol", "available", "EUR")
    venue = await account_id(insider, "@venue", "external", "EUR")
    await insider.execute(
        "UPDATE ledger_balances SET balance = CASE account_id WHEN $1 THEN -1 ELSE balance + "
        "(SELECT balance + 1 FROM ledger_balances WHERE account_id = $1) END WHERE account_id IN ($1, $2)",
        carol,
        venue,
    )
    report = await verify(insider.pool)
    assert [(n.account.owner, n.asset, n.balance) for n in report.negatives] == [("carol", "EUR", -1)]
    assert report.imbalances == {}
    assert any("negative" in problem for problem in report.problems)


async def test_the_report_lists_every_problem_in_json(insider):
    alice = await account_id(insider, "alice", "available", "EUR")
    await insider.execute("UPDATE ledger_balances SET balance = balance + 1 WHERE account_id = $1", alice)
    document = (await verify(insider.pool)).as_json()
    assert document["ok"] is False
    assert document["trial_balance_imbalances"] == {"EUR": "1"}
    assert document["balance_mismatches"][0]["owner"] == "alice"
    assert len(document["problems"]) == 2
