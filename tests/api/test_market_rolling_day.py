"""The ticker's 24-hour statistics: one-minute bars over the current UTC minute and the 1,439 before it."""

from __future__ import annotations

from api.marketdata import MINUTE_US, MinuteBar, RollingDay

DAY_US = 1_440 * MINUTE_US
T0 = 1_700_000_000 * 1_000_000 // MINUTE_US * MINUTE_US  # a minute boundary


def test_statistics_cover_every_trade_of_the_window_in_order():
    day = RollingDay()
    for offset, price, quantity in [(0, 100, 1), (MINUTE_US, 120, 2), (MINUTE_US + 5, 90, 3), (3 * MINUTE_US, 110, 4)]:
        day.add(T0 + offset, price, quantity)
    stats = day.stats(T0 + 3 * MINUTE_US + 1)
    assert stats is not None
    assert (stats.open, stats.high, stats.low, stats.close, stats.volume, stats.count) == (100, 120, 90, 110, 10, 4)


def test_a_trade_leaves_the_window_when_its_minute_is_1440_minutes_old():
    day = RollingDay()
    day.add(T0, 100, 1)
    day.add(T0 + MINUTE_US, 105, 2)
    assert day.stats(T0 + DAY_US - 1).volume == 3  # still the 1,440th minute of the window
    later = day.stats(T0 + DAY_US)
    assert (later.open, later.volume, later.count) == (105, 2, 1)
    assert day.stats(T0 + DAY_US + MINUTE_US) is None


def test_trades_in_the_current_minute_count_after_the_settled_minutes_were_folded():
    day = RollingDay()
    day.add(T0, 100, 1)
    assert day.stats(T0 + MINUTE_US).volume == 1  # folds the first minute
    day.add(T0 + MINUTE_US + 1, 130, 5)
    stats = day.stats(T0 + MINUTE_US + 2)
    assert (stats.high, stats.close, stats.volume) == (130, 130, 6)


def test_bars_read_back_at_start_up_come_before_live_trades():
    day = RollingDay()
    day.add(T0 + 2 * MINUTE_US, 110, 1)
    day.load([MinuteBar(T0 // MINUTE_US, 100, 104, 99, 101, 7, 3)])
    stats = day.stats(T0 + 2 * MINUTE_US)
    assert (stats.open, stats.low, stats.close, stats.volume, stats.count) == (100, 99, 110, 8, 4)
