import pandas as pd
import pytest

from stressgrid.core import ConfigError, book_from_records, load_book

GOOD = dict(id="ES", type="equity_future", underlying="EQ.SPX", quantity=10, multiplier=50, currency="USD",
            asset_class="equity", sleeve="trend", adv=1e6, bid_ask_bps=1.0)


def test_demo_book_loads(demo_book_path):
    book = load_book(demo_book_path)
    assert 30 <= len(book) <= 60
    pos = book.positions
    assert pos["id"].is_unique
    assert {"equity", "equity_future", "bond", "fx_forward", "commodity_future", "cds", "option"} <= set(pos["type"])
    assert {"trend", "carry", "value", "defensive", "short_vol"} <= set(pos["sleeve"])
    assert (pos["adv"] > 0).all() and (pos["bid_ask_bps"] >= 0).all()


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(adv=-5), r"position 'ES' \(row 1\), field 'adv': .*positive.*\(got -5\)"),
        (dict(adv=0), r"field 'adv'"),
        (dict(bid_ask_bps=-1), r"field 'bid_ask_bps'"),
        (dict(type="warrant"), r"field 'type'"),
        (dict(underlying="SPX"), r"field 'underlying'"),
        (dict(underlying="IR.USD.10Y"), r"cannot underlie a equity_future"),
        (dict(currency="usd"), r"field 'currency'"),
        (dict(asset_class="crypto"), r"field 'asset_class'"),
        (dict(quantity="lots"), r"field 'quantity'"),
        (dict(multiplier=0), r"field 'multiplier'"),
        (dict(sleeve=""), r"field 'sleeve'"),
        (dict(colour="red"), r"unknown column 'colour'"),
    ],
)
def test_bad_position_names_id_and_field(change, match):
    with pytest.raises(ConfigError, match=match):
        book_from_records([{**GOOD, **change}], source="b.csv")


def test_missing_and_type_specific_fields():
    rec = dict(GOOD)
    del rec["adv"]
    with pytest.raises(ConfigError, match=r"header: no column 'adv', which every position needs"):
        book_from_records([rec])
    # the column is there, the cell is empty
    with pytest.raises(ConfigError, match=r"position 'ES' \(row 1\), field 'adv': missing"):
        book_from_records([{**GOOD, "adv": ""}])
    opt = {**GOOD, "id": "P1", "type": "option", "strike": 2000, "option_type": "put"}
    with pytest.raises(ConfigError, match=r"'expiry' is required for type option"):
        book_from_records([opt])


def test_duplicate_id_and_expired_instrument(tmp_path):
    with pytest.raises(ConfigError, match=r"position 'ES' \(row 2\), field 'id': duplicate of row 1"):
        book_from_records([GOOD, GOOD])
    opt = {**GOOD, "id": "P1", "type": "option", "strike": 2000, "option_type": "put", "expiry": "2017-01-20"}
    book = book_from_records([opt])
    with pytest.raises(ConfigError, match=r"position 'P1', field 'expiry': 2017-01-20 is not after the as-of date 2017-03-29"):
        book.check_dates(pd.Timestamp("2017-03-29"))


def test_csv_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_book(tmp_path / "none.csv")
    p = tmp_path / "empty.csv"
    p.write_text(",".join(GOOD) + "\n")
    with pytest.raises(ConfigError, match="no positions"):
        load_book(p)


VIX_OPT = dict(GOOD, id="VXC", type="vix_option", underlying="VOL.SPX.ATM", multiplier=100, strike=20.0,
               expiry="2019-02-13", option_type="call")
VIX_FUT = dict(GOOD, id="VX", type="vix_future", underlying="VOL.SPX.ATM", multiplier=1000, expiry="2019-02-13")


def test_vix_positions_load():
    book = book_from_records([VIX_FUT, VIX_OPT])
    assert list(book.positions["type"]) == ["vix_future", "vix_option"]


def _one_line(exc) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize(
    "rec, drop, match",
    [
        (VIX_OPT, "strike", r"position 'VXC' \(row 1\): field 'strike' is required for type vix_option"),
        (VIX_OPT, "expiry", r"position 'VXC' \(row 1\): field 'expiry' is required for type vix_option"),
        (VIX_OPT, "option_type", r"field 'option_type' is required for type vix_option"),
        (VIX_FUT, "expiry", r"position 'VX' \(row 1\): field 'expiry' is required for type vix_future"),
    ],
)
def test_vix_missing_fields(rec, drop, match):
    rec = {k: v for k, v in rec.items() if k != drop}
    with pytest.raises(ConfigError, match=match) as exc:
        book_from_records([rec], source="b.csv")
    _one_line(exc)


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(underlying="EQ.SPX"), r"field 'underlying': 'EQ.SPX' cannot underlie a vix_option; expected .*VOL.SPX.ATM for the VIX"),
        (dict(underlying="VOL.SPX.SKEW"), r"field 'underlying': 'VOL.SPX.SKEW' cannot underlie a vix_option; expected .* VOL.SPX.ATM"),
        (dict(strike=0.2), r"field 'strike': 0.2 looks like a decimal vol; .* index points"),
        (dict(strike=-20), r"field 'strike': .*must be > 0 \(got -20\)"),
        (dict(maturity="2019-03-20"), r"field 'maturity': a vix_option settles on the index at its expiry.*2019-03-20"),
        (dict(expiry="13/02/2019"), r"field 'expiry'.*13/02/2019"),
        (dict(option_type="straddle"), r"field 'option_type'.*straddle"),
    ],
)
def test_vix_bad_fields_name_field_and_value(change, match):
    with pytest.raises(ConfigError, match=match) as exc:
        book_from_records([{**VIX_OPT, **change}], source="b.csv")
    _one_line(exc)


def test_vix_future_on_an_equity_and_expired_vix_option():
    with pytest.raises(ConfigError, match=r"position 'VX' \(row 1\): field 'underlying': 'EQ.SPX' cannot underlie a vix_future"):
        book_from_records([{**VIX_FUT, "underlying": "EQ.SPX"}])
    book = book_from_records([VIX_FUT, VIX_OPT])
    with pytest.raises(ConfigError, match=r"position 'VX', field 'expiry': 2019-02-13 is not after the as-of date 2019-03-01"):
        book.check_dates(pd.Timestamp("2019-03-01"))


def test_a_misspelled_header_is_two_lines_for_the_whole_file_and_spaces_around_a_name_are_dropped():
    # it was two problems on every row: 1,000 lines for a book of 500 positions
    rows = [{**{("quantitiy" if k == "quantity" else k): v for k, v in GOOD.items()}, "id": f"P{i}"} for i in range(500)]
    with pytest.raises(ConfigError) as exc:
        book_from_records(rows, source="b.csv")
    lines = str(exc.value).splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("portfolio file b.csv, header: unknown column 'quantitiy'; did you mean 'quantity'? known: id, ")
    assert lines[0].endswith("(got 'quantitiy')")
    assert lines[1].startswith("portfolio file b.csv, header: no column 'quantity', which every position needs")
    spaced = [{(k + " " if k == "quantity" else k): v for k, v in GOOD.items()}]
    assert book_from_records(spaced).positions["quantity"].tolist() == [float(GOOD["quantity"])]
