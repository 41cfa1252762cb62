"""Keyset paging helpers: numbered parameters for the filters that are given, and the next cursor only when more."""

from __future__ import annotations

from api.keyset import Filters, split_page


def test_filters_number_their_parameters_in_the_order_they_are_added() -> None:
    filters = Filters()
    filters.add("account = {0}", "alice")
    filters.add("symbol = {0}", None)
    filters.add("(buyer = {0} OR seller = {0})", "bob")
    filters.add("remaining > 0")

    limit = filters.param(11)

    assert filters.where() == " WHERE account = $1 AND (buyer = $2 OR seller = $2) AND remaining > 0"
    assert (filters.args, limit) == (["alice", "bob", 11], "$3")


def test_no_filters_make_no_where_clause() -> None:
    assert Filters().where() == ""


def test_a_page_with_one_row_more_than_its_limit_has_a_next_cursor_at_its_last_shown_row() -> None:
    assert split_page([1, 2, 3], 2, str) == ([1, 2], "2")


def test_the_last_page_has_no_next_cursor() -> None:
    assert split_page([1, 2], 2, str) == ([1, 2], None)
    assert split_page([], 2, str) == ([], None)
