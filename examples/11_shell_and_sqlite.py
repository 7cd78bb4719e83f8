"""Step 11: a pipeline of shell commands and SQL, from the task library.

What it teaches: ready-made tasks (durable.tasks). `ShellTask` runs a command (an argv
list, never through a shell unless asked) and returns its last line of output; every
line it prints goes to the task run's log (`durable logs RUN`). `SQLiteScript` runs
several statements in one transaction, and `SQLiteQuery` one statement with its values
bound to placeholders, never formatted into the SQL.

The pipeline loads this week's orders into a small warehouse, a SQLite file of its own
(not durable's database): `cksum` names the batch, `wc -l` counts the file's lines, the
rows go in keyed by (batch, order), so loading the same file again replaces its rows
instead of adding them twice, and a query sums them up per country.

Run it:      python examples/11_shell_and_sqlite.py
     or:     durable run examples/11_shell_and_sqlite.py
The warehouse is $DURABLE_HOME/examples/warehouse.db (default ~/.durable/examples/).
"""

from __future__ import annotations

import csv
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

from durable import Flow, signals, task
from durable.tasks.shell import ShellTask
from durable.tasks.sql import SQLiteQuery, SQLiteScript

DATA = Path(__file__).resolve().parent / "data"
OUT = Path(os.environ.get("DURABLE_HOME", "~/.durable")).expanduser() / "examples"
ORDERS = DATA / "orders.csv"
WAREHOUSE = OUT / "warehouse.db"

checksum = ShellTask(["cksum", str(ORDERS)], name="checksum")
count_lines = ShellTask(["wc", "-l", str(ORDERS)], name="count_lines")

create_tables = SQLiteScript(
    script="""
    CREATE TABLE IF NOT EXISTS orders (
        batch TEXT NOT NULL, order_id INTEGER NOT NULL, day TEXT NOT NULL,
        country TEXT NOT NULL, euros REAL NOT NULL,
        PRIMARY KEY (batch, order_id)
    );
    CREATE INDEX IF NOT EXISTS orders_by_country ON orders (batch, country);
    """,
    name="create_tables",
)
# One statement loads every row: the rows are bound as one JSON text (:rows), which
# SQLite's json_each() turns back into rows. INSERT OR REPLACE keeps a rerun idempotent.
insert_rows = SQLiteQuery(
    query="""
    INSERT OR REPLACE INTO orders (batch, order_id, day, country, euros)
    SELECT :batch, json_extract(value, '$.order_id'), json_extract(value, '$.day'),
           json_extract(value, '$.country'), json_extract(value, '$.euros')
    FROM json_each(:rows)
    """,
    fetch="none",
    name="insert_rows",
)
per_country = SQLiteQuery(
    query="""
    SELECT country, count(*) AS orders, round(sum(euros), 2) AS euros
    FROM orders WHERE batch = :batch GROUP BY country ORDER BY euros DESC
    """,
    as_dict=True,
    name="per_country",
)


@task
def warehouse(path: Path) -> str:
    """Make sure the warehouse's folder exists; the SQL tasks get its file from here."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return str(path)


@task
def batch_of(cksum_line: str) -> str:
    """The batch id: the file's CRC, the first word of `cksum`'s output."""
    return f"orders-{cksum_line.split()[0]}"


@task
def convert(path: Path, rates_path: Path) -> list[dict[str, object]]:
    """Read the orders and convert them to euros."""
    rates: dict[str, float] = json.loads(rates_path.read_text())["rates"]
    with path.open(newline="") as file:
        return [
            {
                "order_id": int(row["order_id"]),
                "day": row["day"],
                "country": row["country"],
                "euros": round(float(row["amount"]) * rates[row["currency"]], 2),
            }
            for row in csv.DictReader(file)
        ]


@task
def bind(batch: str, rows: list[dict[str, object]]) -> dict[str, Any]:
    """The values for the SQL placeholders :batch and :rows."""
    return {"batch": batch, "rows": json.dumps(rows)}


@task
def check_count(wc_line: str, inserted: int) -> int:
    """Fail the run if the warehouse did not get one row per data line of the file."""
    data_lines = int(wc_line.split()[0]) - 1  # minus the header
    if inserted != data_lines:
        raise signals.FAIL(f"{data_lines} orders in the file, {inserted} loaded")
    return inserted


with Flow("shell-and-sqlite") as flow:
    db = warehouse(WAREHOUSE)
    values = bind(batch_of(checksum()), convert(ORDERS, DATA / "rates.json"))
    inserted = insert_rows(db=db, data=values, upstream_tasks=[create_tables(db=db)])
    checked = check_count(count_lines(), inserted)
    summary = per_country(db=db, data=values, upstream_tasks=[checked])


def main() -> int:
    """Run the pipeline and print what the warehouse holds."""
    run_id = f"warehouse-{uuid.uuid4().hex[:6]}"
    state = flow.run(run_id=run_id)
    print(f"Flow run {run_id}: {state.name}")
    if not state.is_successful():
        print(f"See what failed: durable show {run_id}")
        return 1
    batch = state.result[values].result["batch"]
    print(f"Loaded {state.result[checked].result} orders as batch {batch}")
    print(f"Per country, from {WAREHOUSE}:")
    for row in state.result[summary].result:
        print(f"  {row['country']}  {row['orders']} orders  {row['euros']:>10.2f} EUR")
    print(f"The commands' output is in the run's log: durable logs {run_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
