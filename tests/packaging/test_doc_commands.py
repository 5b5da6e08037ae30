"""The Python one-liners of the guides (``python -c "..."`` in their code blocks) are valid Python once the
shell has read them: a reader copies them as they are."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUIDES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]


def _one_liners() -> list[tuple[str, str]]:
    out = []
    for path in GUIDES:
        text = path.read_text(encoding="utf-8")
        for block in re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M):
            for m in re.finditer(r"python -c ", block):
                lexer = shlex.shlex(block[m.end():], posix=True)
                lexer.whitespace_split = True
                out.append((f"{path.name}: {block[m.start():m.start() + 60]!r}", lexer.get_token()))
    return out


ONE_LINERS = _one_liners()


def test_the_guides_have_one_liners():
    assert len(ONE_LINERS) >= 3


@pytest.mark.parametrize("where, code", ONE_LINERS, ids=[w for w, _ in ONE_LINERS])
def test_each_one_liner_is_valid_python(where, code):
    compile(code, where, "exec")


@pytest.mark.slow
def test_the_liquidity_guides_example_runs_as_written(monkeypatch):
    # the block under "## Example" in docs/liquidity.md, from the repository's root
    text = (ROOT / "docs" / "liquidity.md").read_text(encoding="utf-8")
    block = re.search(r"```python\n(.*?)```", text[text.index("## Example"):], re.S).group(1)
    monkeypatch.chdir(ROOT)
    names: dict = {}
    exec(compile(block, "docs/liquidity.md", "exec"), names)
    pnl, pp, table, curve = names["pnl"], names["pp"], names["table"], names["curve"]
    assert pnl.shape == pp[:, -1].shape and pp.shape[0] == len(names["scen"].names)
    assert set(table["scope"]) >= {"base", "stress"} and 1.0 in set(curve["aum_multiple"])
    risk = names["risk"]
    assert (risk["la_cvar"] >= risk["cvar"]).all()
