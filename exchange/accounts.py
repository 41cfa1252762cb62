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

    def hold(self, amount: int) -> None:
        """Move `amount` from available to held (for an order); never more than is available."""
        assert 0 <= amount <= self.available, (amount, self)
        self.available -= amount
        self.held += amount

    def release(self, amount: int) -> None:
        """Move `amount` back from held to available; never more than is held."""
        assert 0 <= amount <= self.held, (amount, self)
        self.held -= amount
        self.available += amount

    def __repr__(self) -> str:
        return f"Balance(available={self.available}, held={self.held})"


class Balances:
    """Every account's balance per asset: account -> asset -> `Balance`.

    Nested by account rather than keyed by (account, asset) pairs: two lookups of interned strings cost less than
    building, hashing and comparing a tuple, and the engine looks balances up several times per trade.
    """

    __slots__ = ("_by_account",)

    def __init__(self) -> None:
        self._by_account: dict[str, dict[str, Balance]] = {}

    def of(self, account: str, asset: str) -> Balance:
        assets = self._by_account.get(account)
        if assets is None:
            assets = self._by_account[account] = {}
        balance = assets.get(asset)
        if balance is None:
            balance = assets[asset] = Balance()
        return balance

    def find(self, account: str, asset: str) -> Balance | None:
        """The balance, or None if the account never held the asset (unlike `of`, creates nothing)."""
        assets = self._by_account.get(account)
        return None if assets is None else assets.get(asset)

    def peek(self, account: str, asset: str) -> tuple[int, int]:
        balance = self.find(account, asset)
        return (0, 0) if balance is None else (balance.available, balance.held)

    def hold(self, account: str, asset: str, amount: int) -> None:
        self.of(account, asset).hold(amount)

    def release(self, account: str, asset: str, amount: int) -> None:
        self.of(account, asset).release(amount)

    def of_account(self, account: str) -> dict[str, tuple[int, int]]:
        return {asset: (b.available, b.held) for asset, b in sorted(self._by_account.get(account, {}).items())}

    def items(self) -> Iterator[tuple[tuple[str, str], Balance]]:
        """Every ((account, asset), balance), sorted by account then asset."""
        return iter(
            sorted(
                ((account, asset), balance)
                for account, assets in self._by_account.items()
                for asset, balance in assets.items()
            )
        )

    def entries(self) -> Iterator[tuple[str, str, Balance]]:
        """Every (account, asset, balance) in the order the balances were first touched (replayable: `of` in this
        order rebuilds the same structure)."""
        for account, assets in self._by_account.items():
            for asset, balance in assets.items():
                yield account, asset, balance

    def totals(self) -> dict[str, int]:
        """Available plus held per asset, over every account (the venue included)."""
        totals: dict[str, int] = {}
        for assets in self._by_account.values():
            for asset, balance in assets.items():
                totals[asset] = totals.get(asset, 0) + balance.available + balance.held
        return totals
