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


def _signatures() -> list[tuple[str, str, str]]:
    """``(guide, mention, argument)`` for each argument of each signature the guides write in prose, e.g.
    ``kernels.age(book, positions, base_ccy, as_of, days, base)``, resolved to the function it names."""
    import importlib

    modules = {m: importlib.import_module(f"stressgrid.{m}") for m in
               ("kernels", "scenarios", "monitoring", "liquidity", "portfolios", "reports", "grid", "core", "cluster")}
    # names the guides use for a user's callable or a method, not a function of the package
    not_functions = {"cost_fn", "fit"}
    out = []
    for path in GUIDES:
        text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)  # prose only
        for m in re.finditer(r"`(?:(\w+)\.)?(\w+)\(([^`()]*)\)`", text):
            module, name, args = m.groups()
            if (module and module not in modules) or name in not_functions:
                continue
            found = [getattr(x, name) for x in ([modules[module]] if module else modules.values())
                     if callable(getattr(x, name, None)) and not isinstance(getattr(x, name), type)]
            names = [a.split("=")[0].strip() for a in args.split(",") if a.strip()]
            if len(found) != 1 or not names or not all(re.fullmatch(r"[a-z_]\w*|\.\.\.", n) for n in names):
                continue
            out += [(path.name, m.group(0), n) for n in names if n != "..."]
    return out


SIGNATURES = _signatures()


def test_the_guides_write_signatures():
    assert len({(g, m) for g, m, _ in SIGNATURES}) >= 30


@pytest.mark.parametrize("guide, mention, argument", SIGNATURES, ids=[f"{g}:{m}:{a}" for g, m, a in SIGNATURES])
def test_each_argument_a_guide_names_is_the_functions(guide, mention, argument):
    # a reader calls with the names the guide gives: keyword calls must work
    import importlib
    import inspect

    module, _, name = mention.strip("`").split("(")[0].rpartition(".")
    candidates = [importlib.import_module(f"stressgrid.{module}")] if module else [
        importlib.import_module(f"stressgrid.{m}") for m in
        ("kernels", "scenarios", "monitoring", "liquidity", "portfolios", "reports", "grid", "core", "cluster")]
    fn = next(getattr(c, name) for c in candidates if callable(getattr(c, name, None)))
    params = inspect.signature(fn).parameters
    assert argument in params or any(p.kind == p.VAR_KEYWORD for p in params.values()), \
        f"{guide}: {mention} names {argument!r}; {name} takes {list(params)}"
