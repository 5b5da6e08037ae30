"""The results schema against real run directories, DuckDB, and its document."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stressgrid import reports
from stressgrid.reports._schema import BEGIN_MARK, END_MARK

from report_helpers import run_batch

ROOT = Path(__file__).resolve().parents[2]
duckdb = pytest.importorskip("duckdb")

# DuckDB's name for each schema type (DuckDB reads Parquet's logical types)
DUCKDB_TYPES = {"string": "VARCHAR", "double": "DOUBLE", "int64": "BIGINT", "bool": "BOOLEAN", "timestamp[us]": "TIMESTAMP"}


def _declared(table: str) -> dict[str, dict]:
    spec = reports.load_schema()["tables"][table]
    return {c["name"]: c for c in spec.get("columns", [])}


def test_a_real_run_directory_follows_the_schema(linear_run_src):
    assert reports.check_run_dir(linear_run_src) == []
    reports.validate_run_dir(linear_run_src)  # does not raise
    m = json.loads((linear_run_src / "manifest.json").read_text())
    assert m["schema_version"] == reports.SCHEMA_VERSION
    # every table the schema says is always written is there, and the manifest lists exactly the files
    always = [t for t, s in reports.load_schema()["tables"].items() if s["presence"] == "always"]
    assert all((linear_run_src / f"{t}.parquet").is_file() for t in always)
    assert sorted(m["files"]) == sorted(p.name for p in linear_run_src.glob("*.parquet"))


def test_the_optional_tables_follow_the_schema(full_run_src):
    assert reports.check_run_dir(full_run_src) == []


@pytest.mark.slow
def test_every_scenario_kind_writes_documented_columns(tmp_path):
    """A batch with every scenario kind (and an amplified liquidity stress): the scenarios table's
    kind-specific columns are all documented with their types."""
    book = ROOT / "tests" / "data" / "linear_book.csv"
    batch = tmp_path / "kinds.yaml"
    batch.write_text(textwrap.dedent(f"""
        name: kinds
        book: {book}
        seed: 11
        market: {{as_of: 2017-03-29}}
        scenarios:
          - {{kind: historical, name: crisis, events: [gfc_2008]}}
          - kind: historical
            name: crisis_amplified
            events: [inflation_2022]
            amplify:
              window: {{end: 2017-03-29, lookback_days: 300}}
              correlation: {{blend: 0.5, targets: [{{a: equity, b: equity, value: 0.9}}]}}
              vol: {{multiplier: 1.5}}
              liquidity: {{spread_mult: {{equity: 3, default: 2}}, adv_mult: {{default: 0.5}}}}
          - {{kind: rolling, name: hist_10d, horizon_days: 10, start: 2016-03-29, end: 2017-03-29}}
          - {{kind: bootstrap, name: boot, window: {{end: 2017-03-29, lookback_days: 300}}, block_length: 5, horizon_days: 5, n_scenarios: 100}}
          - {{kind: montecarlo, name: mc_t, model: student_t, window: {{end: 2017-03-29, lookback_days: 300}}, n_scenarios: 100, horizon_days: 5}}
          - {{kind: montecarlo, name: mc_garch, model: garch_t, correlation: dcc, window: {{end: 2017-03-29, lookback_days: 300}}, n_scenarios: 100, horizon_days: 5}}
          - kind: predictive
            name: predictive
            window: {{end: 2017-03-29, lookback_days: 300}}
            n_draws: 10
            stresses: [{{name: spx_down, shocks: {{EQ.SPX: "-20%"}}}}]
    """))
    out = run_batch(batch, tmp_path / "run")
    assert reports.check_run_dir(out) == []
    cols = set(pq.read_schema(out / "scenarios.parquet").names)
    for c in ("mahalanobis", "tail_prob", "dcc_a", "dof", "corr_blend", "spread_mult.equity", "model", "calibrated"):
        assert c in cols  # the kinds really wrote their columns, so the check above covered them


def test_duckdb_loads_every_table_with_the_documented_types(full_run_src):
    con = duckdb.connect()
    schema = reports.load_schema()["tables"]
    files = sorted(full_run_src.glob("*.parquet"))
    assert len(files) >= 20
    for path in files:
        name = path.stem
        n = con.execute(f"SELECT count(*) FROM read_parquet('{path}')").fetchone()[0]
        assert n == pq.read_metadata(path).num_rows and n > 0
        if schema[name].get("open"):
            continue
        described = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()
        arrow = pq.read_schema(path)
        declared = _declared(name)
        for col, typ, *_ in described:
            if pa.types.is_null(arrow.field(col).type):  # an all-null optional column: DuckDB picks a type
                continue
            spec = declared.get(col) or next(p for p in schema[name]["patterns"] if re.match(p["regex"], col))
            assert typ == DUCKDB_TYPES[spec["type"]], (name, col, typ)


def test_duckdb_sql_reproduces_the_euler_identity(linear_run_src):
    """In SQL alone: each level's CVaR contributions add up to the family's CVaR (Tasche 1999)."""
    d = linear_run_src
    rows = duckdb.sql(f"""
        SELECT c.family, c.confidence, c.level, sum(c.cvar_contribution) AS total, any_value(r.value) AS cvar
        FROM read_parquet('{d}/contributions.parquet') c
        JOIN read_parquet('{d}/risk_metrics.parquet') r
          ON r.family = c.family AND r.confidence = c.confidence AND r.metric = 'CVaR'
        GROUP BY ALL
    """).fetchall()
    assert len(rows) == 2 * 2 * 3  # families x confidence levels x levels
    for row in rows:
        assert row[3] == pytest.approx(row[4], rel=1e-10), row


def test_pandas_reads_the_tables_as_is(linear_run_src):
    rm = pd.read_parquet(linear_run_src / "risk_metrics.parquet")
    assert set(rm["metric"]) >= {"VaR", "CVaR", "mean", "vol", "worst", "scenarios"}
    assert len(pd.read_parquet(linear_run_src / "scenario_pnl.parquet")) == 2512 * 22


def test_polars_reads_the_tables_as_is(linear_run_src):
    pl = pytest.importorskip("polars")
    rm = pd.read_parquet(linear_run_src / "risk_metrics.parquet")
    assert pl.read_parquet(linear_run_src / "risk_metrics.parquet").shape == rm.shape


def test_the_schema_document_is_generated_from_the_schema_file():
    doc = (ROOT / "docs" / "schema.md").read_text()
    start, end = doc.index(BEGIN_MARK) + len(BEGIN_MARK), doc.index(END_MARK)
    assert doc[start:end].strip() == reports.schema_markdown().strip(), \
        "docs/schema.md is stale: regenerate it with reports.update_schema_doc('docs/schema.md')"
    s = reports.load_schema()
    for name, t in s["tables"].items():
        assert f"### `{name}.parquet`" in doc
        for c in t.get("columns", []):
            assert f"| `{c['name']}` | `{c['type']}` |" in doc
    for k in s["manifest"]["keys"]:
        assert f"| `{k['name']}` |" in doc


def test_schema_file_is_well_formed():
    s = reports.load_schema()
    assert isinstance(s["schema_version"], int)
    for name, t in s["tables"].items():
        assert t["presence"] in ("always", "conditional", "on_request"), name
        names = [c["name"] for c in t.get("columns", [])]
        assert len(names) == len(set(names)), name
        assert set(t.get("key", [])) <= set(names), name
        for c in t.get("columns", []) + t.get("patterns", []):
            assert c["type"] in s["types"], (name, c)
            assert c["description"]
    assert set(reports.table_names()) >= {"reoptimisation", "reoptimisation_weights", "liquidation", "capacity", "la_risk",
                                          "la_drawdown", "drawdown_paths", "var_backtest", "signals", "rules_fired",
                                          "walk_forward", "champion_challenger", "breaches"}


def test_conformance_check_reports_each_kind_of_problem():
    good = pa.schema([("family", pa.large_string()), ("metric", pa.string()), ("confidence", pa.float64()),
                      ("value", pa.float64()), ("scenario", pa.null())])
    assert reports.check_table_schema("risk_metrics", good) == []
    missing = pa.schema([("family", pa.string()), ("metric", pa.string()), ("confidence", pa.float64()), ("scenario", pa.string())])
    assert reports.check_table_schema("risk_metrics", missing) == ["risk_metrics.parquet: column 'value' is missing"]
    wrong = pa.schema(list(good.remove(3)) + [pa.field("value", pa.string())])
    assert "column 'value' has type string, the schema says double" in reports.check_table_schema("risk_metrics", wrong)[0]
    extra = good.append(pa.field("comment", pa.string()))
    assert "column 'comment' (string) is not in the results schema" in reports.check_table_schema("risk_metrics", extra)[0]
    # a non-nullable column may not be all-null; a dictionary of strings is a string
    assert reports.check_table_schema("risk_metrics", good.set(0, pa.field("family", pa.null())))
    assert reports.check_table_schema("risk_metrics", good.set(0, pa.field("family", pa.dictionary(pa.int8(), pa.string())))) == []
    assert "not in the results schema" in reports.check_table_schema("mystery", good)[0]
    # patterns: liquidity multipliers of any asset class, but only doubles
    liq = pa.schema([("scenario", pa.string()), ("family", pa.string()), ("spread_mult.equity", pa.float64()),
                     ("adv_mult.fx", pa.float64())])
    assert reports.check_table_schema("liquidity", liq) == []
    assert reports.check_table_schema("liquidity", liq.append(pa.field("adv_mult.rates", pa.int64())))


def test_manifest_check_names_missing_wrong_and_unknown_keys(linear_run_src):
    m = json.loads((linear_run_src / "manifest.json").read_text())
    assert reports.check_manifest(m) == []
    bad = json.loads(json.dumps(m))
    del bad["as_of"]
    bad["counts"]["scenarios"] = "2512"
    bad["counts"]["mystery"] = 1
    bad["extra"] = True
    bad["schema_version"] = reports.SCHEMA_VERSION + 1
    problems = reports.check_manifest(bad)
    assert "manifest.json: key 'as_of' is missing" in problems
    assert "manifest.json: key 'counts.scenarios' is str, the schema says integer" in problems
    assert "manifest.json: key 'counts.mystery' is not in the results schema" in problems
    assert "manifest.json: key 'extra' is not in the results schema" in problems
    assert any("schema_version is" in p for p in problems)


def test_validate_run_dir_raises_a_data_error_listing_problems(linear_run, tmp_path):
    from stressgrid.core import DataError

    pd.DataFrame({"family": ["a"], "value": [1.0]}).to_parquet(linear_run / "risk_metrics.parquet", index=False)
    with pytest.raises(DataError, match="risk_metrics.parquet: column 'metric' is missing"):
        reports.validate_run_dir(linear_run)
    assert reports.check_run_dir(tmp_path / "nowhere") == [f"{tmp_path / 'nowhere'}: no manifest.json (not a run directory)"]


def test_documented_column_types_match_the_real_files(linear_run_src):
    """The types the schema declares are the ones the grid writes (not only compatible ones)."""
    for path in linear_run_src.glob("*.parquet"):
        declared = _declared(path.stem)
        for f in pq.read_schema(path):
            if f.name in declared and not pa.types.is_null(f.type):
                t = declared[f.name]["type"]
                ok = {"string": pa.types.is_string(f.type) or pa.types.is_large_string(f.type) or pa.types.is_dictionary(f.type),
                      "double": pa.types.is_float64(f.type), "int64": pa.types.is_int64(f.type),
                      "bool": pa.types.is_boolean(f.type), "timestamp[us]": pa.types.is_timestamp(f.type)}[t]
                assert ok, (path.stem, f.name, f.type, t)
    assert np.isfinite(pd.read_parquet(linear_run_src / "scenarios.parquet")["pnl"]).all()
