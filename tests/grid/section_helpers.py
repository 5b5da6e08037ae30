"""The small batch that the grid's section tests (liquidity, optimise, monitoring) build on: the linear
test book with a NAV, a crisis replay and rolling 10-day windows; each test module adds its section.
And a run's table read as a user reads it, and a worker function interrupted as by Ctrl-C."""

import textwrap
from pathlib import Path

import pandas as pd

from stressgrid.grid import load_batch, prepare_inputs, run_chunk

DATA = Path(__file__).resolve().parents[1] / "data"


#: a bootstrap family of 400 scenarios, as a line of a section batch's scenarios list
BOOT = """\
  - kind: bootstrap
    name: boot
    window: {end: 2017-03-29, lookback_days: 750}
    block_length: 10
    horizon_days: 10
    n_scenarios: 400
"""


class Interrupt:
    """A worker function that is interrupted (as by Ctrl-C) when it reaches task ``at``."""

    def __init__(self, at):
        self.at = at

    def __call__(self, payload, task):
        if task.task_id == self.at:
            raise KeyboardInterrupt
        return run_chunk(payload, task)


def section_batch(name: str, rolling_start: str, rest: str = "") -> str:
    """Batch-file text: the common header, then ``rest`` (more scenario entries and the section under
    test, as indented YAML text)."""
    return textwrap.dedent(f"""\
        name: {name}
        book: book.csv
        seed: 7
        nav: 50000000
        market:
          as_of: 2017-03-29
        scenarios:
          - kind: historical
            name: crisis
            events: [gfc_2008, lehman_2008, euro_debt_2011]
          - kind: rolling
            name: hist_10d
            horizon_days: 10
            start: {rolling_start}
            end: 2017-03-29
        """) + textwrap.dedent(rest)


def section_inputs(directory: Path, text: str, book: pd.DataFrame | None = None):
    """Write the linear test book (or ``book``) and the batch ``text`` into ``directory`` and prepare
    the batch's inputs."""
    (pd.read_csv(DATA / "linear_book.csv") if book is None else book).to_csv(directory / "book.csv", index=False)
    (directory / "b.yaml").write_text(text)
    batch, digest = load_batch(directory / "b.yaml")
    return prepare_inputs(batch, digest)


def read_run_table(out: Path, name: str) -> pd.DataFrame:
    """A table as the user reads it (a file, or a folder of parts in file-name order), labels as text."""
    folder = out / name
    if folder.is_dir():
        df = pd.concat([pd.read_parquet(p) for p in sorted(folder.glob("part-*.parquet"))], ignore_index=True)
    else:
        df = pd.read_parquet(out / f"{name}.parquet")
    for c in df.columns:
        if isinstance(df[c].dtype, pd.CategoricalDtype):
            df[c] = df[c].astype(str)
    return df


def run_in_memory_and_streamed(make_batch, folder: Path) -> tuple:
    """The batch ``make_batch(folder, stream)`` writes, run serially in memory (into ``folder/memory``) and
    streamed (``folder/streamed``): ``(memory, streamed)`` results."""
    from stressgrid.grid import run_batch

    return (run_batch(make_batch(folder, False), folder / "memory", serial=True),
            run_batch(make_batch(folder, True), folder / "streamed", serial=True))
