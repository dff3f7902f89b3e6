"""Warehouses keep their catalogue and stock in spreadsheets: `dispatch import-parts` and
`dispatch import-stock` read them. Every row is checked first; one bad row and nothing is
written, and the row is named. A good file is written in one transaction, stock rows as counts
through the stock ledger."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import select, text
from support.database import count_rows
from support.moments import T0
from support.parts import CENTRAL, NEAR_BRANCH, set_up_stockroom
from typer.testing import CliRunner

from dispatch.cli import app
from dispatch.parts import imports, service
from dispatch.parts.models import Part, Stock, StockMovement

LOCATIONS = [
    CENTRAL,
    NEAR_BRANCH,
    {"code": "WAW-S", "name": "Warsaw South", "kind": "branch", "lat": 52.1800, "lon": 21.0200},
]
BELT = {"sku": "BELT-1200", "name": "Drum belt 1200", "categories": ["washing machine"], "lead_time_hours": 72}
PUMP = {"sku": "PUMP-7", "name": "Drain pump", "categories": ["washing machine", "dishwasher"], "lead_time_hours": 48}

CATALOGUE = """sku,name,categories,lead_time_hours
BELT-1200,Drum belt 1200,Washing  Machine,72
PUMP-7,Drain pump,washing machine; Dishwasher|DISHWASHER,48
"""


@pytest.fixture
def stockroom(api):
    """A central warehouse, two branches and two parts in the catalogue, no stock yet."""
    return set_up_stockroom(api, locations=LOCATIONS, parts=(BELT, PUMP))


def write_csv(tmp_path: Path, name: str, content: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode(encoding))
    return path


def import_parts(database, path):
    return imports.import_parts(database, path, now=T0)


def import_stock(database, settings, path):
    return imports.import_stock(database, path, settings=settings, now=T0)


def messages(result) -> list[str]:
    return [str(e) for e in result.errors]


def catalogue(api) -> dict[str, dict]:
    return {p["sku"]: p for p in api.get("/v1/parts", who="warehouse").json()["items"]}


def on_hand(api, code: str, sku: str) -> int:
    return api.get(f"/v1/locations/{code}/stock/{sku}", who="warehouse").json()["on_hand"]


def ledger(database) -> list[StockMovement]:
    with database.transaction(write=False) as session:
        return list(session.scalars(select(StockMovement).order_by(StockMovement.id)))


def reserve(api, quantity: int, sku: str = "BELT-1200") -> dict:
    """A job near the Warsaw Centre branch asks for parts: held there, or backordered."""
    job = api.job()
    r = api.post(f"/v1/jobs/{job['id']}/parts", {"sku": sku, "quantity": quantity})
    assert r.status_code == 201, r.text
    return r.json()


# The catalogue ----------------------------------------------------------------------------------


def test_a_catalogue_file_creates_its_parts_with_categories_normalised_like_the_api(api, database, tmp_path):
    result = import_parts(database, write_csv(tmp_path, "catalogue.csv", CATALOGUE))

    assert result.ok and result.written
    assert (result.created, result.updated, result.unchanged) == (2, 0, 0)
    assert result.summary() == "parts: 2 created, 0 updated, 0 unchanged (2 rows from catalogue.csv)"
    parts = catalogue(api)
    assert parts["BELT-1200"]["categories"] == ["washing machine"]
    assert parts["PUMP-7"]["categories"] == ["dishwasher", "washing machine"]
    assert parts["PUMP-7"]["lead_time_hours"] == 48


def test_known_skus_are_updated_new_ones_created_and_identical_rows_left_alone(stockroom, database, tmp_path):
    api = stockroom
    before = catalogue(api)
    api.clock.advance(hours=1)
    result = imports.import_parts(
        database,
        write_csv(
            tmp_path,
            "catalogue.csv",
            """sku,name,categories,lead_time_hours
BELT-1200,Drum belt 1200 (reinforced),washing machine;dryer,96
PUMP-7,Drain pump,Dishwasher;Washing Machine,48
HOSE-2,Inlet hose,,12.5
""",
        ),
        now=api.clock.now(),
    )

    assert (result.created, result.updated, result.unchanged) == (1, 1, 1), messages(result)
    after = catalogue(api)
    assert after["BELT-1200"] | {"updated_at": None} == {
        **BELT,
        "name": "Drum belt 1200 (reinforced)",
        "categories": ["dryer", "washing machine"],
        "lead_time_hours": 96,
        "created_at": before["BELT-1200"]["created_at"],
        "updated_at": None,
    }
    assert after["BELT-1200"]["updated_at"] != before["BELT-1200"]["updated_at"]
    assert after["PUMP-7"] == before["PUMP-7"]  # same content in another order: untouched
    assert after["HOSE-2"]["categories"] == [] and after["HOSE-2"]["lead_time_hours"] == 12.5


def test_a_file_with_one_bad_row_imports_nothing_and_names_the_row(stockroom, database, tmp_path, monkeypatch):
    api = stockroom
    before = catalogue(api)
    path = write_csv(
        tmp_path,
        "catalogue.csv",
        """sku,name,categories,lead_time_hours
BELT-1200,Drum belt 1200 (reinforced),washing machine,96
HOSE-2,Inlet hose,washing machine,about a day
DOOR-1,Door seal,washing machine,24
""",
    )
    monkeypatch.setenv("DATABASE_URL", api.database.engine.url.render_as_string(hide_password=False))

    outcome = CliRunner().invoke(app, ["import-parts", str(path)])

    assert outcome.exit_code == 1
    assert "catalogue.csv: line 3, lead_time_hours: must be a number of hours ≥ 0" in outcome.output
    assert "nothing was written: 1 error in catalogue.csv" in outcome.output
    assert catalogue(api) == before


def test_every_bad_row_is_reported_with_its_line_and_column(api, database, tmp_path):
    result = import_parts(
        database,
        write_csv(
            tmp_path,
            "catalogue.csv",
            f"""sku,name,categories,lead_time_hours
BELT-1200,Drum belt,washing machine,72
BELT 1200,Drum belt,washing machine,72
,Nameless,washing machine,72
PUMP-7,,washing machine,-4
HOSE-2,"Inlet hose,
two lines",washing machine;{"x" * 65},10000
BELT-1200,Drum belt again,washing machine,72
DOOR-1,Door seal,washing machine
""",
        ),
    )

    assert not result.ok and not result.written
    assert messages(result) == [
        "line 3, sku: String should match pattern '^[A-Za-z0-9_.-]+$'",
        "line 4, sku: String should have at least 1 character",
        "line 5, name: String should have at least 1 character",
        "line 5, lead_time_hours: must be a number of hours ≥ 0",
        f"line 6, categories: String should have at most 64 characters ('{'x' * 65}')",
        "line 6, lead_time_hours: must be a number of hours ≤ 8784",
        "line 8, sku: BELT-1200 is already on line 2",
        "line 9: has 3 values; the header has 4 columns",
    ]
    assert count_rows(database, Part) == 0


def test_a_header_that_is_not_the_expected_one_is_refused_clearly(api, database, tmp_path):
    missing = import_parts(database, write_csv(tmp_path, "a.csv", "sku,name,lead_time_hours\nBELT-1,Belt,5\n"))
    extra = import_parts(database, write_csv(tmp_path, "b.csv", "SKU,Name,Categories,Lead_Time_Hours,Colour\n"))
    twice = import_parts(database, write_csv(tmp_path, "c.csv", "sku,name,categories,lead_time_hours,sku\n"))
    empty = import_parts(database, write_csv(tmp_path, "d.csv", "\n\n"))

    assert messages(missing) == [
        "line 1: missing column categories: the header must be sku,name,categories,lead_time_hours (in any order)"
    ]
    assert messages(extra) == [
        "line 1: unknown column colour: the header must be sku,name,categories,lead_time_hours (in any order)"
    ]
    assert messages(twice) == [
        "line 1: column sku more than once: the header must be sku,name,categories,lead_time_hours (in any order)"
    ]
    assert messages(empty) == ["the file is empty: expected a header row sku,name,categories,lead_time_hours"]
    assert count_rows(database, Part) == 0


def test_a_spreadsheets_byte_order_mark_crlf_and_blank_trailing_lines_are_fine(api, database, tmp_path):
    content = CATALOGUE.replace("\n", "\r\n") + ",,,\r\n\r\n\r\n"
    from_file = import_parts(database, write_csv(tmp_path, "excel.csv", content, encoding="utf-8-sig"))
    assert (from_file.ok, from_file.created, from_file.rows) == (True, 2, 2), messages(from_file)

    # A text stream (already decoded) may still carry the mark; the columns may come in any order.
    stream = io.StringIO("\ufefflead_time_hours,sku,categories,name\n12,HOSE-2,washing machine,Inlet hose\n")
    from_stream = import_parts(database, stream)
    assert (from_stream.ok, from_stream.created) == (True, 1), messages(from_stream)
    assert set(catalogue(api)) == {"BELT-1200", "PUMP-7", "HOSE-2"}


def test_a_file_that_is_not_utf8_is_refused(api, database, tmp_path):
    result = import_parts(
        database, write_csv(tmp_path, "latin1.csv", CATALOGUE + "ŁOŻ-1,Łożysko,pralka,24\n", encoding="iso-8859-2")
    )
    assert not result.ok
    assert "is not UTF-8 text" in messages(result)[0]
    assert count_rows(database, Part) == 0


def test_a_large_catalogue_is_streamed_and_written_in_one_go(api, database, tmp_path):
    rows = "".join(f"SKU-{i:05d},Part {i},washing machine;dryer,{i % 100}\n" for i in range(3000))
    path = write_csv(tmp_path, "big.csv", "sku,name,categories,lead_time_hours\n" + rows)
    seen: list[tuple[str, int, int | None]] = []

    result = imports.import_parts(database, path, now=T0, progress=lambda *tick: seen.append(tick))

    assert (result.ok, result.created) == (True, 3000)
    assert count_rows(database, Part) == 3000
    checking = [t for t in seen if t[0] == "checking"]
    writing = [t for t in seen if t[0] == "writing"]
    assert checking[-1] == ("checking", path.stat().st_size, path.stat().st_size)  # bytes of the file
    assert [done for _, done, _ in writing] == [500, 1000, 1500, 2000, 2500, 3000]


# Stock levels ----------------------------------------------------------------------------------


def test_a_stock_file_sets_levels_as_counts_in_the_stock_ledger(stockroom, database, settings, tmp_path):
    api = stockroom
    first = import_stock(
        database,
        settings,
        write_csv(
            tmp_path,
            "count-march.csv",
            """location,sku,on_hand
WAW-C,BELT-1200,5
WAW-S,BELT-1200,2
CENTRAL,PUMP-7,40
""",
        ),
    )
    assert (first.ok, first.created, first.updated, first.unchanged) == (True, 3, 0, 0), messages(first)
    assert first.summary() == "stock levels: 3 created, 0 updated, 0 unchanged (3 rows from count-march.csv)"
    assert (on_hand(api, "WAW-C", "BELT-1200"), on_hand(api, "CENTRAL", "PUMP-7")) == (5, 40)

    second = import_stock(
        database,
        settings,
        write_csv(
            tmp_path,
            "count-april.csv",
            """location,sku,on_hand
WAW-C,BELT-1200,3
WAW-S,BELT-1200,2
WAW-S,PUMP-7,0
""",
        ),
    )
    assert (second.created, second.updated, second.unchanged) == (1, 1, 1), messages(second)

    movements = ledger(database)
    assert [(m.on_hand_change, m.reason.value, m.actor, m.note) for m in movements] == [
        (5, "counted", "import:count-march.csv", "CSV import, line 2"),
        (2, "counted", "import:count-march.csv", "CSV import, line 3"),
        (40, "counted", "import:count-march.csv", "CSV import, line 4"),
        (-2, "counted", "import:count-april.csv", "CSV import, line 2"),  # unchanged rows move nothing
    ]
    # The API's audit trail shows the same.
    trail = api.get("/v1/locations/WAW-C/stock/BELT-1200/movements", who="warehouse").json()["items"]
    assert [(m["on_hand_change"], m["actor"]) for m in trail] == [
        (5, "import:count-march.csv"),
        (-2, "import:count-april.csv"),
    ]


def test_unknown_locations_and_skus_and_bad_counts_are_row_errors_and_nothing_is_written(
    stockroom, database, settings, tmp_path
):
    result = import_stock(
        database,
        settings,
        write_csv(
            tmp_path,
            "stock.csv",
            """location,sku,on_hand
WAW-C,BELT-1200,5
KRK-1,BELT-1200,5
WAW-C,NO-SUCH-PART,5
WAW-S,BELT-1200,-1
WAW-S,PUMP-7,2.5
CENTRAL,BELT-1200,lots
CENTRAL,PUMP-7,
WAW-C,BELT-1200,6
WAW-S,PUMP-7,20000000
""",
        ),
    )

    assert not result.ok and not result.written
    assert messages(result) == [
        "line 3, location: unknown location 'KRK-1'",
        "line 4, sku: unknown SKU 'NO-SUCH-PART'",
        "line 5, on_hand: must be a whole number ≥ 0",
        "line 6, on_hand: must be a whole number ≥ 0",
        "line 7, on_hand: must be a whole number ≥ 0",
        "line 8, on_hand: must be a whole number ≥ 0",
        "line 9, sku: BELT-1200 at WAW-C is already on line 2",
        "line 10, on_hand: must be a whole number ≤ 10000000",
    ]
    assert (count_rows(database, Stock), count_rows(database, StockMovement)) == (0, 0)


def test_a_count_below_what_is_reserved_for_jobs_imports_nothing(stockroom, database, settings, tmp_path):
    api = stockroom
    import_stock(database, settings, write_csv(tmp_path, "opening.csv", "location,sku,on_hand\nWAW-C,BELT-1200,5\n"))
    assert reserve(api, 3)["location"] == "WAW-C"
    before = len(ledger(database))

    result = import_stock(
        database,
        settings,
        write_csv(
            tmp_path,
            "recount.csv",
            """location,sku,on_hand
WAW-S,BELT-1200,4
WAW-C,BELT-1200,2
""",
        ),
    )

    assert messages(result) == [
        "line 3, on_hand: 3 of BELT-1200 at WAW-C are reserved for jobs; on hand cannot go below that"
    ]
    assert (on_hand(api, "WAW-S", "BELT-1200"), on_hand(api, "WAW-C", "BELT-1200")) == (0, 5)
    assert len(ledger(database)) == before


def test_a_rise_in_a_stock_file_fills_backorders_like_any_count(stockroom, database, settings, tmp_path):
    api = stockroom
    line = reserve(api, 2)
    assert line["state"] == "backordered"

    delivery = write_csv(tmp_path, "delivery.csv", "location,sku,on_hand\nWAW-C,BELT-1200,5\n")
    result = import_stock(database, settings, delivery)

    assert result.ok, messages(result)
    filled = api.get(f"/v1/jobs/{line['job_id']}/parts").json()["items"]
    assert [(p["state"], p["location"]) for p in filled] == [("reserved", "WAW-C")]
    stock = api.get("/v1/locations/WAW-C/stock/BELT-1200", who="warehouse").json()
    assert (stock["on_hand"], stock["reserved"]) == (5, 2)
    assert [(m.reason.value, m.on_hand_change, m.reserved_change, m.actor) for m in ledger(database)] == [
        ("counted", 5, 0, "import:delivery.csv"),
        ("reserved", 0, 2, "import:delivery.csv"),
    ]


def test_when_the_database_refuses_a_row_midway_the_rows_before_it_are_rolled_back(
    stockroom, database, settings, tmp_path, monkeypatch
):
    api = stockroom
    real_set_stock = service.set_stock

    def set_stock(*, session, code, sku, **kwargs):
        if code == "CENTRAL":  # the third row: the database's CHECK refuses what this would leave
            session.execute(text("UPDATE stock SET reserved = on_hand + 1"))
        return real_set_stock(session=session, code=code, sku=sku, **kwargs)

    monkeypatch.setattr(service, "set_stock", set_stock)
    result = import_stock(
        database,
        settings,
        write_csv(
            tmp_path,
            "stock.csv",
            """location,sku,on_hand
WAW-C,BELT-1200,5
WAW-S,BELT-1200,2
CENTRAL,PUMP-7,40
""",
        ),
    )

    assert not result.written and (result.created, result.updated) == (0, 0)
    [error] = result.errors
    assert (error.line, error.column) == (4, None)
    assert error.message.startswith("the database refused this row:")
    assert (on_hand(api, "WAW-C", "BELT-1200"), on_hand(api, "WAW-S", "BELT-1200")) == (0, 0)
    assert count_rows(database, StockMovement) == 0


def test_a_reservation_made_after_the_check_still_stops_the_import_at_the_write(
    stockroom, database, settings, tmp_path, monkeypatch
):
    api = stockroom
    import_stock(database, settings, write_csv(tmp_path, "opening.csv", "location,sku,on_hand\nWAW-C,BELT-1200,5\n"))
    real_set_stock = service.set_stock

    def set_stock(*, session, code, sku, **kwargs):
        if code == "WAW-C":  # a job reserves 3 between the file's check and its write
            session.execute(text("UPDATE stock SET reserved = 3"))
        return real_set_stock(session=session, code=code, sku=sku, **kwargs)

    monkeypatch.setattr(service, "set_stock", set_stock)
    result = import_stock(
        database,
        settings,
        write_csv(
            tmp_path,
            "recount.csv",
            """location,sku,on_hand
WAW-S,BELT-1200,4
WAW-C,BELT-1200,2
""",
        ),
    )

    assert messages(result) == [
        "line 3, on_hand: 3 of BELT-1200 at WAW-C are reserved for jobs; on hand cannot go below that"
    ]
    assert not result.written
    assert on_hand(api, "WAW-S", "BELT-1200") == 0
    assert api.get("/v1/locations/WAW-C/stock/BELT-1200", who="warehouse").json()["reserved"] == 0  # rolled back too
    assert [m.actor for m in ledger(database)] == ["import:opening.csv"]


def test_a_stock_file_with_a_byte_order_mark_imports_from_the_command_line_quietly(
    stockroom, database, tmp_path, monkeypatch
):
    api = stockroom
    path = write_csv(tmp_path, "stock.csv", "Location,SKU,On_Hand\r\nWAW-C,BELT-1200,7\r\n\r\n", encoding="utf-8-sig")
    monkeypatch.setenv("DATABASE_URL", api.database.engine.url.render_as_string(hide_password=False))

    outcome = CliRunner().invoke(app, ["import-stock", str(path)])

    assert outcome.exit_code == 0, outcome.output
    # Not a terminal: the summary only, no progress bar and no escape codes.
    assert outcome.output == "stock levels: 1 created, 0 updated, 0 unchanged (1 row from stock.csv)\n"
    assert on_hand(api, "WAW-C", "BELT-1200") == 7
    assert [m.actor for m in ledger(database)] == ["import:stock.csv"]
