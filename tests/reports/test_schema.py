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
DUCKDB_TYPES = {"string": "VARCHAR", "double": "DOUBLE", "int64": "BIGINT", "bool": "BOOLEAN", "timestamp[us]": "TIMESTAMP",
                "list<string>": "VARCHAR[]"}


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
    for c in ("mahalanobis", "tail_prob", "dcc_a", "dof", "corr_blend", "spread_mult_equity", "model", "calibrated"):
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
            # an all-null column is written with its declared type, so DuckDB never has to guess one
            assert not pa.types.is_null(arrow.field(col).type), (name, col)
            spec = declared.get(col) or next(p for p in schema[name]["patterns"] if re.match(p["regex"], col))
            assert typ == DUCKDB_TYPES[spec["type"]], (name, col, typ)


def test_duckdb_sql_reproduces_the_euler_identity(linear_run_src):
    """In SQL alone: each level's CVaR contributions add up to the family's CVaR (Tasche 1999)."""
    d = linear_run_src
    rows = duckdb.sql(f"""
        SELECT c.family, c.confidence, c.level, sum(c.cvar_contribution) AS total, any_value(r.value) AS cvar
        FROM read_parquet('{d}/contributions.parquet') c
        JOIN read_parquet('{d}/risk_metrics.parquet') r
          ON r.family = c.family AND r.confidence = c.confidence AND r.metric = 'cvar'
        GROUP BY ALL
    """).fetchall()
    assert len(rows) == 2 * 2 * 3  # families x confidence levels x levels
    for row in rows:
        assert row[3] == pytest.approx(row[4], rel=1e-10), row


def test_pandas_reads_the_tables_as_is(linear_run_src):
    rm = pd.read_parquet(linear_run_src / "risk_metrics.parquet")
    assert set(rm["metric"]) >= {"var", "cvar", "mean", "vol", "worst", "scenarios"}
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
    liq = pa.schema([("scenario", pa.string()), ("family", pa.string()), ("spread_mult_equity", pa.float64()),
                     ("adv_mult_fx", pa.float64())])
    assert reports.check_table_schema("liquidity", liq) == []
    assert reports.check_table_schema("liquidity", liq.append(pa.field("adv_mult_rates", pa.int64())))


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
                      "bool": pa.types.is_boolean(f.type), "timestamp[us]": pa.types.is_timestamp(f.type),
                      "list<string>": f.type == pa.list_(pa.string())}[t]
                assert ok, (path.stem, f.name, f.type, t)
    assert np.isfinite(pd.read_parquet(linear_run_src / "scenarios.parquet")["pnl"]).all()


# --- the SQL contract (schema version 2) -----------------------------------------------------------------

#: DuckDB keyword categories that cannot name a column without quotes, or that name a function (position)
_NOT_A_NAME = ("reserved", "type_function", "column_name")


def _sql_problems(name: str, keywords: dict[str, str]) -> list[str]:
    out = []
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        out.append(f"{name!r} is not a plain lower-case identifier")
    if keywords.get(name) in _NOT_A_NAME:
        out.append(f"{name!r} is a DuckDB keyword ({keywords[name]})")
    if name in ("start", "end", "id", "position", "group", "limit", "window"):
        out.append(f"{name!r}: the schema's name for it is window_start/window_end, position_id, group_name, limit_name")
    return out


def test_every_column_name_is_a_plain_sql_identifier():
    """No quoting in SQL: lower-case identifiers, none a word DuckDB reserves, one name for the position
    key (position_id) and for group, limit and date-range columns, in every table and key of the schema."""
    keywords = dict(duckdb.sql("SELECT keyword_name, keyword_category FROM duckdb_keywords()").fetchall())
    assert keywords["group"] == "reserved" and keywords["end"] == "reserved"  # the check can fail
    problems = []
    for table, spec in reports.load_schema()["tables"].items():
        names = [c["name"] for c in spec.get("columns", [])] + list(spec.get("key", []))
        names += [p["pattern"].replace("<asset_class>", "equity") for p in spec.get("patterns", [])]
        for p in spec.get("patterns", []):
            assert re.fullmatch(p["regex"], p["pattern"].replace("<asset_class>", "equity")), (table, p)
        problems += [f"{table}: {x}" for n in names for x in _sql_problems(n, keywords)]
    assert problems == []


def test_duckdb_selects_every_column_without_quotes(full_run_src):
    """Every column of every table of a run (the monitoring tables included), named bare in a query."""
    keywords = dict(duckdb.sql("SELECT keyword_name, keyword_category FROM duckdb_keywords()").fetchall())
    for path in sorted(full_run_src.glob("*.parquet")):
        cols = pq.read_schema(path).names
        assert [x for c in cols for x in _sql_problems(c, keywords)] == [], path.name
        duckdb.sql(f"SELECT {', '.join(cols)} FROM read_parquet('{path}') LIMIT 1").fetchall()


def test_the_position_key_has_one_name(linear_run_src):
    ids = set(pd.read_parquet(linear_run_src / "positions.parquet")["position_id"])
    assert set(pd.read_parquet(linear_run_src / "scenario_pnl.parquet")["position_id"]) == ids
    assert set(pd.read_parquet(linear_run_src / "jump_to_default.parquet")["position_id"]) == ids
    ct = pd.read_parquet(linear_run_src / "contributions.parquet")
    assert set(ct.loc[ct.level == "position", "group_name"]) == ids
    n = duckdb.sql(f"""SELECT count(*) FROM read_parquet('{linear_run_src}/scenario_pnl.parquet')
                       JOIN read_parquet('{linear_run_src}/positions.parquet') USING (position_id)""").fetchall()[0][0]
    assert n == len(pd.read_parquet(linear_run_src / "scenario_pnl.parquet"))


def test_every_parquet_file_carries_the_schema_version(linear_run_src, linear_run):
    for path in sorted(linear_run_src.glob("*.parquet")):
        meta = pq.read_schema(path).metadata
        assert meta[b"stressgrid.schema_version"] == str(reports.SCHEMA_VERSION).encode(), path.name
        assert meta[b"stressgrid.table"] == path.stem.encode()
    kv = dict(duckdb.sql(f"SELECT decode(key), decode(value) FROM parquet_kv_metadata('{linear_run_src}/risk_metrics.parquet')").fetchall())
    assert kv["stressgrid.schema_version"] == str(reports.SCHEMA_VERSION)
    # a table written without it, or with another version, is a difference from the schema
    pd.read_parquet(linear_run / "sensitivity.parquet").to_parquet(linear_run / "sensitivity.parquet", index=False)
    t = pq.read_table(linear_run / "breakdown.parquet")
    pq.write_table(t.replace_schema_metadata({**t.schema.metadata, b"stressgrid.schema_version": b"1"}), linear_run / "breakdown.parquet")
    assert reports.check_run_dir(linear_run) == [
        "breakdown.parquet: stressgrid.schema_version is 1, this stressgrid reads version 2",
        "sensitivity.parquet: no stressgrid.schema_version in the file's key-value metadata",
    ]


def test_factor_lists_are_arrow_lists(linear_run_src):
    """Factors held flat, calibrated or propagated are lists of names (DuckDB VARCHAR[]), not text."""
    sc = pq.read_table(linear_run_src / "scenarios.parquet")
    for c in ("uncovered", "calibrated", "propagated"):
        assert sc.schema.field(c).type == pa.list_(pa.string()), c
    rows = duckdb.sql(f"""SELECT scenario, len(uncovered) AS n FROM read_parquet('{linear_run_src}/scenarios.parquet')
                          WHERE family = 'crisis'""").fetchall()
    assert len(rows) == 3 and all(isinstance(n, int) for _, n in rows)
    # the schema check takes lists of strings and refuses text where a list is declared
    good = pa.schema([("scenario", pa.string()), ("family", pa.string()), ("weight", pa.float64()), ("pnl", pa.float64()),
                      ("kind", pa.string()), ("uncovered", pa.list_(pa.string()))])
    assert reports.check_table_schema("scenarios", good) == []
    assert reports.check_table_schema("scenarios", good.set(5, pa.field("uncovered", pa.large_list(pa.large_string())))) == []
    assert reports.check_table_schema("scenarios", good.set(5, pa.field("uncovered", pa.string())))


def test_an_all_null_or_all_empty_column_keeps_its_declared_type():
    df = pd.DataFrame({"scenario": ["a", "b"], "family": ["f", "f"], "weight": [0.5, 0.5], "pnl": [1.0, -1.0],
                       "kind": [None, None], "window_start": [None, None], "uncovered": [[], []], "core": [None, None]})
    t = reports.arrow_table("scenarios", df)
    assert t.schema.field("kind").type == pa.string() and t.schema.field("window_start").type == pa.timestamp("us")
    assert t.schema.field("uncovered").type == t.schema.field("core").type == pa.list_(pa.string())
    assert reports.check_table_schema("scenarios", t.schema) == []


def _var_cvar_query() -> str:
    doc = (ROOT / "docs" / "schema.md").read_text()
    return re.search(r"<!-- BEGIN VAR CVAR QUERY -->\s*```sql\n(.*?)```\s*<!-- END VAR CVAR QUERY -->", doc, re.S).group(1)


def _run_query(run: Path) -> pd.DataFrame:
    return duckdb.sql(_var_cvar_query().replace("RUN/", f"{run}/")).df()


def test_the_documented_query_reproduces_var_and_cvar_of_a_run(linear_run_src):
    """docs/schema.md's DuckDB query, on the run's scenarios.parquet, gives risk_metrics' var and cvar."""
    got = _run_query(linear_run_src).set_index(["family", "confidence"])
    rm = pd.read_parquet(linear_run_src / "risk_metrics.parquet")
    assert len(got) == 4  # 2 families x 2 levels
    for m in ("var", "cvar"):
        want = rm[rm.metric == m].set_index(["family", "confidence"])["value"]
        assert len(want) == 4
        for key, v in want.items():
            assert got.loc[key, m] == pytest.approx(v, rel=1e-9, abs=1e-9), (m, key)


@pytest.mark.parametrize("seed", range(6))
def test_the_documented_query_is_the_weighted_estimator_with_its_tie_rule(tmp_path, seed):
    """On weighted scenarios with exact ties, near ties (within 1e-10 of each other) and equal weights that
    sum to the confidence level exactly, the query gives core.var_cvar's numbers (to 1e-9)."""
    from stressgrid.core import var_cvar

    rng = np.random.default_rng(seed)
    rows, rm = [], []
    for f, n in (("small", 3), ("equal", 100), ("weighted", 257), ("ties", 40)):
        pnl = np.round(rng.normal(0, 1e6, n), -4 if f == "ties" else 2)  # "ties": many exactly equal losses
        if f == "ties":
            pnl[:8] = pnl.min() * (1 + rng.uniform(-1e-12, 1e-12, 8))  # near ties at the worst loss
        w = np.full(n, 1.0 / n) if f in ("small", "equal") else rng.dirichlet(np.full(n, 0.7))
        rows.append(pd.DataFrame({"scenario": [f"{f}_{i}" for i in range(n)], "family": f, "weight": w, "pnl": pnl}))
        for a in (0.9, 0.95, 0.99):
            var, cvar = var_cvar(pnl, a, w)
            rm += [dict(family=f, metric="var", confidence=a, value=var), dict(family=f, metric="cvar", confidence=a, value=cvar)]
    pd.concat(rows).to_parquet(tmp_path / "scenarios.parquet", index=False)
    want = pd.DataFrame(rm)
    want.to_parquet(tmp_path / "risk_metrics.parquet", index=False)
    got = _run_query(tmp_path).set_index(["family", "confidence"])
    for _, r in want.iterrows():
        assert got.loc[(r.family, r.confidence), r.metric] == pytest.approx(r.value, rel=1e-9, abs=1e-6), tuple(r)


def test_the_documented_query_reads_a_large_family_in_parts_to_the_order_statistic(tmp_path):
    """300,000 equal probabilities in two part files: the query's VaR is the smallest loss whose rank k has
    k / n >= a (exact rational arithmetic), as core.var_cvar's; a running sum that adds one probability at
    a time falls short of a and takes the next loss."""
    from fractions import Fraction

    from stressgrid.core import var_cvar

    n = 300_000
    pnl = np.random.default_rng(5).normal(0, 1e6, n)
    (tmp_path / "scenarios").mkdir()
    for i, part in enumerate(np.array_split(np.arange(n), 2)):
        pd.DataFrame({"scenario": [f"s{j}" for j in part], "family": "big", "weight": np.full(len(part), 1.0 / n),
                      "pnl": pnl[part]}).to_parquet(tmp_path / "scenarios" / f"part-{i:06d}-0000.parquet", index=False)
    pd.DataFrame([dict(family="big", metric="cvar", confidence=a, value=0.0) for a in (0.95, 0.99)]).to_parquet(
        tmp_path / "risk_metrics.parquet", index=False)
    query = _var_cvar_query().replace("RUN/scenarios.parquet", "RUN/scenarios/*.parquet").replace("RUN/", f"{tmp_path}/")
    got = duckdb.sql(query).df().set_index("confidence")
    loss = np.sort(-pnl)
    for a in (0.95, 0.99):
        k = int(-(-Fraction(str(a)) * n // 1))
        var, cvar = var_cvar(pnl, a)
        assert got.loc[a, "var"] == loss[k - 1] == var
        assert got.loc[a, "cvar"] == pytest.approx(cvar, rel=1e-9)


def _as_version_1(run: Path) -> None:
    """Rewrite a run directory as schema version 1 wrote it: the old names, metric names and joined text."""
    old = {"group_name": "group", "limit_name": "limit", "window_start": "start", "window_end": "end"}
    for path in run.glob("*.parquet"):
        df = pd.read_parquet(path).rename(columns=old)
        if path.stem == "positions":
            df = df.rename(columns={"position_id": "id"})
        if path.stem == "risk_metrics":
            df["metric"] = df["metric"].replace({"var": "VaR", "cvar": "CVaR", "var_sensitivity": "VaR_sensitivity",
                                                 "cvar_sensitivity": "CVaR_sensitivity"})
        for c in ("uncovered", "calibrated", "propagated"):
            if c in df.columns:
                df[c] = [None if v is None else ",".join(v) for v in df[c]]
        df.to_parquet(path, index=False)
    m = json.loads((run / "manifest.json").read_text())
    m["schema_version"] = 1
    (run / "manifest.json").write_text(json.dumps(m))


def test_a_run_directory_of_version_1_is_read_under_the_new_names(linear_run_src, linear_run):
    """Reports, limits and comparisons of stored runs keep working on a run written before version 2."""
    _as_version_1(linear_run)
    assert "contributions.parquet: column 'group_name' is missing" in reports.check_run_dir(linear_run)
    run = reports.open_run(linear_run)
    assert run.schema_version == 1 and run.confidences == [0.95, 0.99]
    assert "group_name" in run.table("breakdown") and "position_id" in run.table("positions")
    assert list(run.table("scenarios")["uncovered"].iloc[0]) == list(pd.read_parquet(linear_run_src / "scenarios.parquet")["uncovered"].iloc[0])
    limits = reports.parse_limits({"nav": 5e8, "limits": [{"metric": "cvar", "confidence": 0.99, "max": "4%"},
                                                          {"metric": "worst_loss", "scope": "sleeve:*", "max": "3%"}]})
    new, old = reports.evaluate_limits(linear_run_src, limits), reports.evaluate_limits(linear_run, limits)
    pd.testing.assert_frame_equal(new, old)
    cmp = reports.compare_runs(linear_run, linear_run_src)
    assert (cmp.metrics["change"].fillna(0) == 0).all() and set(cmp.positions["status"]) == {"unchanged"}
    assert "VaR 99%" in reports.render_report(linear_run)
    # the results store lists it with its stressed VaR, read under the new metric names
    for run, name in ((linear_run, "old"), (linear_run_src, "new")):
        reports.store_run(run, linear_run.parent / "store", run_id=name)
    listed = reports.list_runs(linear_run.parent / "store").set_index("run_id")
    assert listed.loc["old", "stressed_var"] == listed.loc["new", "stressed_var"] > 0
