"""Pre-trade risk balances: what each account has available and what its open orders hold, per asset.

An asset is a currency code or a listed symbol. `VENUE` is the exchange's own account (it receives the fees).
Balances are integers and can never go negative: every debit is checked before the engine accepts a command.
"""

from __future__ import annotations

from collections.abc import Iterator

VENUE = "@venue"


class Balance:
    __slots__ = ("available", "held")

    def __init__(self) -> None:
        self.available = 0
        self.held = 0

    def __repr__(self) -> str:
        return f"Balance(available={self.available}, held={self.held})"


class Balances:
    __slots__ = ("_by_key",)

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str], Balance] = {}

    def of(self, account: str, asset: str) -> Balance:
        key = (account, asset)
        balance = self._by_key.get(key)
        if balance is None:
            balance = self._by_key[key] = Balance()
        return balance

    def peek(self, account: str, asset: str) -> tuple[int, int]:
        balance = self._by_key.get((account, asset))
        return (0, 0) if balance is None else (balance.available, balance.held)

    def hold(self, account: str, asset: str, amount: int) -> None:
        balance = self.of(account, asset)
        assert 0 <= amount <= balance.available, (account, asset, amount, balance)
        balance.available -= amount
        balance.held += amount

    def release(self, account: str, asset: str, amount: int) -> None:
        balance = self.of(account, asset)
        assert 0 <= amount <= balance.held, (account, asset, amount, balance)
        balance.held -= amount
        balance.available += amount

    def of_account(self, account: str) -> dict[str, tuple[int, int]]:
        return {
            asset: (b.available, b.held)
            for (owner, asset), b in sorted(self._by_key.items())
            if owner == account
        }

    def items(self) -> Iterator[tuple[tuple[str, str], Balance]]:
        return iter(sorted(self._by_key.items()))

    def totals(self) -> dict[str, int]:
        """Available plus held per asset, over every account (the venue included)."""
        totals: dict[str, int] = {}
        for (_, asset), balance in self._by_key.items():
            totals[asset] = totals.get(asset, 0) + balance.available + balance.held
        return totals
