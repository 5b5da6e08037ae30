"""Risk reports: results schema, HTML report, limits and breaches, the results store.

Everything here reads a run directory (the Parquet tables and ``manifest.json`` that ``stressgrid run``
writes; a per-scenario table may be a folder of part files, one per grid task and family); nothing here
runs scenarios.  ``reports/schema.json`` documents and versions those files.
"""

from ._finish import BREACH_EXIT_CODE, DEFAULT_STORE, default_store, finish_run, print_comparison, print_runs, terminal_console
from ._charts import MAX_BAR_FAMILIES, SMALL_FAMILY, scenario_bar_data
from ._html import MONITORING_TABLES, REPORT_SECTIONS, headline, render_report, write_report
from ._limits import (BREACH_COLUMNS, METRICS, Limit, Limits, check_limit_families, evaluate_limits, load_limits,
                      parse_limits, write_breaches)
from ._rundir import RunDir, open_run, publish_run, stage_run
from ._schema import (
    PART_NAME,
    PARTITIONED_TABLES,
    SCHEMA_PATH,
    SCHEMA_VERSION,
    arrow_table,
    check_manifest,
    check_run_dir,
    check_table_schema,
    load_schema,
    part_file_name,
    schema_markdown,
    table_files,
    table_names,
    update_schema_doc,
    upgrade_table,
    validate_run_dir,
    write_table,
)
from ._store import RunComparison, compare_runs, list_runs, run_id_of, store_run
from ._terminal import (caveats, garch_warning, horizon_explained, implausible_warning, look_ahead_note, plural, print_breaches,
                        print_summary, tail_warnings, thin_tail_warning, DESIGNED_KINDS)

__all__ = [
    "BREACH_COLUMNS",
    "BREACH_EXIT_CODE",
    "DEFAULT_STORE",
    "default_store",
    "print_comparison",
    "print_runs",
    "terminal_console",
    "RunComparison",
    "compare_runs",
    "finish_run",
    "list_runs",
    "run_id_of",
    "store_run",
    "Limit",
    "Limits",
    "MAX_BAR_FAMILIES",
    "METRICS",
    "MONITORING_TABLES",
    "REPORT_SECTIONS",
    "horizon_explained",
    "garch_warning",
    "implausible_warning",
    "tail_warnings",
    "thin_tail_warning",
    "DESIGNED_KINDS",
    "look_ahead_note",
    "PART_NAME",
    "PARTITIONED_TABLES",
    "RunDir",
    "SCHEMA_PATH",
    "SCHEMA_VERSION",
    "SMALL_FAMILY",
    "arrow_table",
    "caveats",
    "check_limit_families",
    "check_manifest",
    "check_run_dir",
    "check_table_schema",
    "evaluate_limits",
    "headline",
    "load_limits",
    "load_schema",
    "open_run",
    "parse_limits",
    "part_file_name",
    "plural",
    "publish_run",
    "print_breaches",
    "print_summary",
    "render_report",
    "scenario_bar_data",
    "schema_markdown",
    "stage_run",
    "table_files",
    "table_names",
    "update_schema_doc",
    "upgrade_table",
    "validate_run_dir",
    "write_breaches",
    "write_report",
    "write_table",
]
