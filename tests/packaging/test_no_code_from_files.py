"""No code path of the package can run code read from a file: no unpickling, no eval or exec, no YAML
loader that builds objects, no numpy load that allows pickles.  Files a user or a run folder hands us
are data."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: the package's own source: every top-level folder with Python code, and the top-level modules
SKIP = {"tests", "benchmarks", "tools", ".venv", ".venv-ci", "build", "dist", ".git"}

FORBIDDEN = [
    (re.compile(r"\bpickle\.loads?\("), "pickle.load"),
    (re.compile(r"\bcloudpickle\.loads?\("), "cloudpickle.load"),
    (re.compile(r"\b(?:marshal|shelve|dill|joblib)\.(?:load|loads|open)\("), "marshal/shelve/dill/joblib"),
    (re.compile(r"\byaml\.(?:unsafe_load|full_load|load_all)\("), "an unsafe YAML loader"),
    (re.compile(r"\byaml\.load\((?![^\n]*Loader=_UniqueKeyLoader)"), "yaml.load without the safe loader"),
    (re.compile(r"(?<![\w.])(?:eval|exec)\("), "eval/exec"),
    (re.compile(r"allow_pickle\s*=\s*True"), "allow_pickle=True"),
    (re.compile(r"\bnp\.load\((?![^\n]*allow_pickle=False)"), "np.load without allow_pickle=False"),
    (re.compile(r"\bpd\.read_pickle\("), "pandas.read_pickle"),
]


def _sources():
    for p in ROOT.rglob("*.py"):
        rel = p.relative_to(ROOT)
        if rel.parts[0] in SKIP or any(part.startswith(".") for part in rel.parts):
            continue
        yield rel, p.read_text(encoding="utf-8")


def test_the_scan_finds_what_it_looks_for():
    planted = ["pickle.load(fh)", "yaml.load(text)", "x = eval(s)", "np.load(path)", "yaml.unsafe_load(s)"]
    for code in planted:
        assert any(rx.search(code) for rx, _ in FORBIDDEN), code
    for ok in ["yaml.load(b, Loader=_UniqueKeyLoader)", "np.load(fh, allow_pickle=False)", "model.evaluate(x)"]:
        assert not any(rx.search(ok) for rx, _ in FORBIDDEN), ok


def test_no_module_of_the_package_runs_code_from_a_file():
    found = []
    n = 0
    for rel, text in _sources():
        n += 1
        for i, line in enumerate(text.splitlines(), 1):
            code = line.split("#", 1)[0]
            for rx, what in FORBIDDEN:
                if rx.search(code):
                    found.append(f"{rel}:{i}: {what}: {line.strip()}")
    assert n > 50  # the scan saw the package
    assert not found, "\n".join(found)
