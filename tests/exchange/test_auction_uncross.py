"""Specification of the call-auction uncrossing: the price rule step by step, then the allocation.

Worked examples come from three published sources, each cited where used:

- XETRA: Deutsche Börse, "Xetra Market Model Equities" / "T7 Market Model for the Trading Venue Xetra",
  auction price determination, examples 1-6. The order books are taken from their transcription with the
  Xetra captions in github.com/ratzlow/tinyEXCH, src/test/java/net/tinyexch/ob/match/AuctionMatchTest.java
  (the PDFs' example pages were not readable in our reference store). Every expected figure below is
  recomputed by hand in the test's docstring.
- BNB: BNB Beacon Chain docs, "Match Steps and Examples" (bnb-chain.github.io, docs/beaconchain/
  match-examples.md), examples 1-4 (steps 1 and 2, which that venue shares with Xetra).
- EURONEXTCLONE: github.com/mattdavey/EuronextClone, src/test/resources/com/euronextclone/
  auction-market-order.feature, Euronext-style auctions with market orders; prices there are in euros,
  here in cents (ticks of 0.01). Market-to-limit orders take part in a Euronext auction as market orders.

Cases marked "constructed" are ours, with the arithmetic shown. In the tables B(p) is the buy quantity
executable at p (market buys + buys limited at or above p), S(p) the sell quantity (market sells + sells
limited at or below p), volume = min(B, S) and surplus = B - S.
"""

import pytest

from exchange.auction import (
    AuctionOrder,
    Execution,
    PriceRule,
    Uncrossing,
    allocate,
    determine_price,
    determine_price_from_levels,
)

MARKET = None


def book(*sides: list[tuple[int | None, int]]) -> list[list[AuctionOrder]]:
    """Orders from (price, quantity) pairs; ids and priorities follow the order written, across both sides."""
    counter = 0
    result = []
    for side in sides:
        orders = []
        for price, quantity in side:
            counter += 1
            orders.append(AuctionOrder(order_id=counter, price=price, quantity=quantity, priority=counter))
        result.append(orders)
    return result


# --- Step 1: the highest executable volume -----------------------------------------------------------------


def test_xetra_example_1_the_single_limit_with_the_highest_volume_is_the_price():
    """XETRA example 1: "exactly one limit at which the highest order volume can be executed": € 200.

    bids 200@202, 200@201, 300@200; asks 100@200, 200@198, 400@197
      p    B    S    volume
     197  700  400   400
     198  700  600   600
     200  700  700   700  <- unique maximum, surplus 0
     201  400  700   400
     202  200  700   200
    """
    bids, asks = book([(202, 200), (201, 200), (200, 300)], [(200, 100), (198, 200), (197, 400)])

    assert determine_price(bids, asks, reference_price=150) == Uncrossing(200, 700, 0, PriceRule.VOLUME)


def test_bnb_example_1_the_largest_execution_decides():
    """BNB example 1: sells 250@98, 50@97; buys 150@100, 150@98 -> 98 executes 300 (97: 50, 100: 150)."""
    bids, asks = book([(100, 150), (98, 150)], [(98, 250), (97, 50)])

    assert determine_price(bids, asks, reference_price=99) == Uncrossing(98, 300, 0, PriceRule.VOLUME)


def test_bnb_example_2_the_largest_execution_decides_even_with_a_surplus():
    """BNB example 2: sells 200@97, 100@96; buys 150@100, 50@99, 300@97.

    96: B 500 S 100 -> 100;  97: B 500 S 300 -> 300 (surplus +200);  99: 200;  100: 150.
    """
    bids, asks = book([(100, 150), (99, 50), (97, 300)], [(97, 200), (96, 100)])

    assert determine_price(bids, asks, reference_price=99) == Uncrossing(97, 300, 200, PriceRule.VOLUME)


def test_a_book_that_does_not_cross_has_no_price():
    """Constructed: best bid 99 below best ask 101, so every price executes 0."""
    bids, asks = book([(99, 10), (98, 5)], [(101, 10)])

    assert determine_price(bids, asks, reference_price=100) == Uncrossing(None, 0, 0, PriceRule.VOLUME)


def test_an_empty_book_has_no_price():
    assert determine_price([], [], reference_price=100) == Uncrossing(None, 0, 0, PriceRule.VOLUME)


def test_a_one_sided_book_has_no_price_even_with_market_orders():
    bids, asks = book([(MARKET, 10), (105, 10)], [])

    assert determine_price(bids, asks, reference_price=100) == Uncrossing(None, 0, 0, PriceRule.VOLUME)


def test_market_orders_against_limits_trade_at_the_limit_that_executes_most():
    """Constructed: market buy 50; sells 30@100, 30@101.

    100: B 50 S 30 -> 30;  101: B 50 S 60 -> 50 (surplus -10)  => 101 by volume.
    """
    bids, asks = book([(MARKET, 50)], [(100, 30), (101, 30)])

    assert determine_price(bids, asks, reference_price=90) == Uncrossing(101, 50, -10, PriceRule.VOLUME)


# --- Step 2: the smallest surplus among the highest-volume prices ----------------------------------------


def test_bnb_example_3_the_least_absolute_surplus_decides():
    """BNB example 3: sells 250@98, 250@97, 1000@96; buys 300@102, 100@100, 200@99, 300@98.

    96: B 900 S 1000 -> 900, surplus -100  <- smallest
    97: B 900 S 1250 -> 900, surplus -350
    98: B 900 S 1500 -> 900, surplus -600
    99: 600, 100: 400, 102: 300
    """
    bids, asks = book([(102, 300), (100, 100), (99, 200), (98, 300)], [(98, 250), (97, 250), (96, 1000)])

    assert determine_price(bids, asks, reference_price=99) == Uncrossing(96, 900, -100, PriceRule.SURPLUS)


def test_bnb_example_4_the_least_absolute_surplus_decides():
    """BNB example 4: sells 10@98, 50@97, 50@95; buys 30@102, 10@101, 50@99, 15@96.

    95: B 105 S 50 -> 50;  96: B 105 S 50 -> 50
    97: B 90 S 100 -> 90, surplus -10  <- smallest
    98: B 90 S 110 -> 90, surplus -20;  99: B 90 S 110 -> 90, surplus -20
    101: 40;  102: 30
    """
    bids, asks = book([(102, 30), (101, 10), (99, 50), (96, 15)], [(98, 10), (97, 50), (95, 50)])

    assert determine_price(bids, asks, reference_price=100) == Uncrossing(97, 90, -10, PriceRule.SURPLUS)


def test_a_volume_tie_goes_to_the_smaller_surplus_whatever_its_side():
    """Constructed: buys 10@100, 5@99; sells 10@99, 3@100.

    99:  B 15 S 10 -> 10, surplus +5
    100: B 10 S 13 -> 10, surplus -3  <- smaller in size, although on the sell side
    """
    bids, asks = book([(100, 10), (99, 5)], [(99, 10), (100, 3)])

    assert determine_price(bids, asks, reference_price=99) == Uncrossing(100, 10, -3, PriceRule.SURPLUS)


# --- Step 3: market pressure -------------------------------------------------------------------------------


def test_xetra_example_2_a_surplus_on_the_buy_side_takes_the_highest_limit():
    """XETRA example 2: "several possible limits and there is a surplus on the bid": € 201.

    bids 400@202, 200@201; asks 300@199, 200@198
      p    B    S   volume surplus
     198  600  200   200
     199  600  500   500   +100
     201  600  500   500   +100  <- highest of the buy-surplus candidates
     202  400  500   400
    """
    bids, asks = book([(202, 400), (201, 200)], [(199, 300), (198, 200)])

    for reference in (150, 200, 250):
        assert determine_price(bids, asks, reference) == Uncrossing(201, 500, 100, PriceRule.MARKET_PRESSURE)


def test_xetra_example_3_a_surplus_on_the_sell_side_takes_the_lowest_limit():
    """XETRA example 3: "several possible limits and there is a surplus on the ask": € 199.

    bids 300@202, 200@201; asks 400@199, 200@198
      p    B    S   volume surplus
     198  500  200   200
     199  500  600   500   -100  <- lowest of the sell-surplus candidates
     201  500  600   500   -100
     202  300  600   300
    """
    bids, asks = book([(202, 300), (201, 200)], [(199, 400), (198, 200)])

    for reference in (150, 200, 250):
        assert determine_price(bids, asks, reference) == Uncrossing(199, 500, -100, PriceRule.MARKET_PRESSURE)


def test_a_volume_and_surplus_tie_all_on_the_buy_side_goes_to_the_highest_price():
    """Constructed: buys 10@101, 10@100; sells 15@99, 4@101.

    99:  B 20 S 15 -> 15, surplus +5
    100: B 20 S 15 -> 15, surplus +5  <- highest of the tied buy-surplus prices
    101: B 10 S 19 -> 10
    """
    bids, asks = book([(101, 10), (100, 10)], [(99, 15), (101, 4)])

    assert determine_price(bids, asks, reference_price=50) == Uncrossing(100, 15, 5, PriceRule.MARKET_PRESSURE)


def test_euronextclone_market_orders_filled_totally_at_the_highest_buy_pressure_limit():
    """EURONEXTCLONE "the market order is totally filled", reference 10.00 (1000 ticks).

    bids: A 50 market-to-limit, G 20 market, B 90@10.10, C 10@9.90; asks: D 40 market-to-limit,
    E 100@10.08, F 60@10.15 (submitted row by row, bid then ask: A, D, G, E, B, F, C).
       p     B    S   volume surplus
      990   170   40    40
     1008   160  140   140    +20
     1010   160  140   140    +20  <- highest of the buy-surplus candidates
     1015    70  200    70
    Trades: A-D 40, A-E 10, G-E 20, B-E 70 at 10.10.
    """
    a = AuctionOrder(1, MARKET, 50, 1)
    d = AuctionOrder(4, MARKET, 40, 2)
    g = AuctionOrder(7, MARKET, 20, 3)
    e = AuctionOrder(5, 1008, 100, 4)
    b = AuctionOrder(2, 1010, 90, 5)
    f = AuctionOrder(6, 1015, 60, 6)
    c = AuctionOrder(3, 990, 10, 7)
    bids, asks = [a, g, b, c], [d, e, f]

    uncrossing = determine_price(bids, asks, reference_price=1000)

    assert uncrossing == Uncrossing(1010, 140, 20, PriceRule.MARKET_PRESSURE)
    assert allocate(bids, asks, uncrossing) == [
        Execution(1, 4, 40),
        Execution(1, 5, 10),
        Execution(7, 5, 20),
        Execution(2, 5, 70),
    ]


# --- Step 4: the reference price ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "price", "surplus"),
    [
        (199, 199, 100),  # published: "If the reference price is € 199, the auction price will be € 199."
        (200, 200, 0),  # inside the candidates' range: the reference price itself
        (250, 202, -100),  # constructed: above the highest candidate
        (150, 199, 100),  # constructed: below the lowest candidate
    ],
)
def test_xetra_example_4_surpluses_on_both_sides_defer_to_the_reference_price(reference, price, surplus):
    """XETRA example 4: "several possible limits and there is both an ask surplus and a bid surplus. The
    auction price either equals the reference price or is fixed according to the limit nearest to the
    reference price."

    bids market 100, 100@199; asks market 100, 100@202
      p    B    S   volume surplus
     199  200  100   100   +100
     200  100  100   100      0   (between the limits: the reference price itself when it is 200)
     202  100  200   100   -100
    The transcription asserts € 199 for a reference price of € 200, which is the nearest LIMIT and matches
    tinyEXCH's own nearest-limit code, not the caption ("either equals the reference price"); we follow the
    caption, as the BNB step 4 does ("if the reference price falls into these prices, it is chosen").
    """
    bids, asks = book([(MARKET, 100), (199, 100)], [(MARKET, 100), (202, 100)])

    assert determine_price(bids, asks, reference) == Uncrossing(price, 100, surplus, PriceRule.REFERENCE_PRICE)


@pytest.mark.parametrize(
    ("reference", "price"),
    [
        (202, 201),  # published: above the candidates, the highest limit
        (198, 199),  # published: below the candidates, the lowest limit
        (200, 200),  # between 199 and 201: the reference price itself (see the docstring)
        (201, 201),  # constructed: on a candidate
    ],
)
def test_xetra_example_5_no_surplus_defers_to_the_reference_price(reference, price):
    """XETRA example 5: "several possible limits and no surplus"; the price equals the reference price or
    the limit nearest to it.

    bids 300@202, 200@201; asks 200@198, 300@199
      p    B    S   volume surplus
     198  500  200   200
     199  500  500   500     0
     200  500  500   500     0
     201  500  500   500     0
     202  300  500   300
    For a reference price of € 200 the transcription asserts € 201 (tinyEXCH breaks its nearest-limit tie
    upwards); by the caption the reference price lies between the candidates and is the price.
    """
    bids, asks = book([(202, 300), (201, 200)], [(198, 200), (199, 300)])

    assert determine_price(bids, asks, reference) == Uncrossing(price, 500, 0, PriceRule.REFERENCE_PRICE)


@pytest.mark.parametrize("reference", [250, 99])
def test_xetra_example_6_only_market_orders_trade_at_the_reference_price(reference):
    """XETRA example 6: "only market orders are executable": bid market 900, ask market 800, the auction
    price is the reference price (the transcription checks 250 and 99); 800 execute, 100 left on the bid."""
    bids, asks = book([(MARKET, 900)], [(MARKET, 800)])

    assert determine_price(bids, asks, reference) == Uncrossing(reference, 800, 100, PriceRule.REFERENCE_PRICE)


def test_euronextclone_market_orders_filled_partially_at_the_reference_price():
    """EURONEXTCLONE "the market order is partially filled", reference 10 (1000 ticks): buys A 40
    market-to-limit, G 20 market; sell D 45 market. Trades A-D 40, G-D 5 at the reference price."""
    a = AuctionOrder(1, MARKET, 40, 1)
    d = AuctionOrder(2, MARKET, 45, 2)
    g = AuctionOrder(3, MARKET, 20, 3)

    uncrossing = determine_price([a, g], [d], reference_price=1000)

    assert uncrossing == Uncrossing(1000, 45, 15, PriceRule.REFERENCE_PRICE)
    assert allocate([a, g], [d], uncrossing) == [Execution(1, 2, 40), Execution(3, 2, 5)]


@pytest.mark.parametrize(("reference", "price"), [(100, 100), (120, 110), (80, 90)])
def test_market_orders_with_limits_that_do_not_cross_trade_at_the_reference_price_within_the_limits(
    reference, price
):
    """Constructed: market 100 each side, buy 10@90, sell 10@110 (the limits do not cross).

    90: B 110 S 100 -> 100, +10;  110: B 100 S 110 -> 100, -10  => both sides: the reference price,
    held within [90, 110].
    """
    bids, asks = book([(MARKET, 100), (90, 10)], [(MARKET, 100), (110, 10)])

    uncrossing = determine_price(bids, asks, reference)

    assert (uncrossing.price, uncrossing.volume, uncrossing.rule) == (price, 100, PriceRule.REFERENCE_PRICE)


# --- The aggregated fast path -----------------------------------------------------------------------------


def test_levels_in_any_order_and_with_repeated_prices_give_the_same_price_as_the_orders():
    """XETRA example 1 again, with its levels shuffled and the 300@200 bid split in two entries."""
    from_levels = determine_price_from_levels(
        buy_levels=[(200, 100), (202, 200), (200, 200), (201, 200)],
        sell_levels=[(197, 400), (200, 100), (198, 200)],
        market_buy=0,
        market_sell=0,
        reference_price=150,
    )

    assert from_levels == Uncrossing(200, 700, 0, PriceRule.VOLUME)


def test_levels_carry_market_orders_as_totals():
    """XETRA example 4 as levels: market 100 each side."""
    uncrossing = determine_price_from_levels([(199, 100)], [(202, 100)], 100, 100, reference_price=200)

    assert uncrossing == Uncrossing(200, 100, 0, PriceRule.REFERENCE_PRICE)


@pytest.mark.parametrize("quantity", [0, -5])
def test_a_level_without_positive_quantity_is_rejected(quantity):
    with pytest.raises(ValueError):
        determine_price_from_levels([(100, quantity)], [(100, 5)], 0, 0, reference_price=100)


def test_a_negative_market_total_is_rejected():
    with pytest.raises(ValueError):
        determine_price_from_levels([(100, 5)], [(100, 5)], -1, 0, reference_price=100)


# --- Allocation -------------------------------------------------------------------------------------------


def test_xetra_example_1_executions_pair_both_queues_in_priority_order():
    """XETRA example 1 at € 200: buys queue 200@202, 200@201, 300@200; sells 400@197, 200@198, 100@200."""
    bids, asks = book([(202, 200), (201, 200), (200, 300)], [(200, 100), (198, 200), (197, 400)])

    executions = allocate(bids, asks, determine_price(bids, asks, reference_price=150))

    assert executions == [Execution(1, 6, 200), Execution(2, 6, 200), Execution(3, 5, 200), Execution(3, 4, 100)]


def test_the_surplus_side_fills_in_time_priority_at_the_marginal_limit():
    """Constructed: buys 50@100 (priority 5), 50@100 (priority 3); sell 60@100. The earlier buy fills
    completely, the later one gets the remaining 10."""
    later = AuctionOrder(order_id=1, price=100, quantity=50, priority=5)
    earlier = AuctionOrder(order_id=2, price=100, quantity=50, priority=3)
    sell = AuctionOrder(order_id=3, price=100, quantity=60, priority=4)

    uncrossing = determine_price([later, earlier], [sell], reference_price=100)

    assert allocate([later, earlier], [sell], uncrossing) == [Execution(2, 3, 50), Execution(1, 3, 10)]


def test_market_orders_fill_before_better_priced_earlier_limits():
    """Constructed: sell market 10 (priority 9) and sell 10@90 (priority 1); buy 10@100. Sells at 90 or at
    market both qualify at 90 (B 10, S 20); the market order comes first whatever its time."""
    limit_sell = AuctionOrder(order_id=1, price=90, quantity=10, priority=1)
    market_sell = AuctionOrder(order_id=2, price=MARKET, quantity=10, priority=9)
    buy = AuctionOrder(order_id=3, price=100, quantity=10, priority=5)

    uncrossing = determine_price([buy], [limit_sell, market_sell], reference_price=95)

    assert uncrossing.price == 90
    assert allocate([buy], [limit_sell, market_sell], uncrossing) == [Execution(3, 2, 10)]


def test_better_limits_fill_before_earlier_orders_at_worse_limits():
    """Constructed: buys 10@100 (priority 1) and 10@105 (priority 2); sell 10@95. The buy at 105 fills."""
    early = AuctionOrder(order_id=1, price=100, quantity=10, priority=1)
    better = AuctionOrder(order_id=2, price=105, quantity=10, priority=2)
    sell = AuctionOrder(order_id=3, price=95, quantity=10, priority=3)

    uncrossing = determine_price([early, better], [sell], reference_price=100)

    assert allocate([early, better], [sell], uncrossing) == [Execution(2, 3, 10)]


def test_orders_on_the_wrong_side_of_the_price_do_not_execute():
    """XETRA example 2 at € 201: the sell 300@199 and 200@198 trade; the buy side's two orders share 500."""
    bids, asks = book([(202, 400), (201, 200)], [(199, 300), (198, 200)])
    uncrossing = determine_price(bids, asks, reference_price=200)
    below_price_buy = AuctionOrder(order_id=99, price=200, quantity=1000, priority=0)

    executions = allocate([*bids, below_price_buy], asks, uncrossing)

    assert all(e.buy_order_id != 99 for e in executions)
    assert sum(e.quantity for e in executions) == 500


def test_no_price_means_no_executions():
    bids, asks = book([(99, 10)], [(101, 10)])

    assert allocate(bids, asks, determine_price(bids, asks, reference_price=100)) == []


def test_an_uncrossing_that_the_book_cannot_supply_is_rejected():
    bids, asks = book([(100, 10)], [(100, 10)])

    with pytest.raises(ValueError):
        allocate(bids, asks, Uncrossing(100, 11, 0, PriceRule.VOLUME))
