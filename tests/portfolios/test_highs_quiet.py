"""HiGHS prints a banner on the C library's stdout when the first model of a process is built; a
``--quiet`` run must print nothing, so the first model is built with stdout pointed elsewhere."""

import subprocess
import sys

CODE = """
from stressgrid.portfolios._highs import new_model
h = new_model()
h2 = new_model()
print("done")
"""


def test_building_models_prints_nothing_but_our_own_output():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "done\n"


def test_the_banner_is_what_we_hide():
    # without the redirect, the first model prints it (if a later HiGHS stops printing, this says so)
    out = subprocess.run([sys.executable, "-c", "import highspy; highspy.Highs()"], capture_output=True, text=True,
                         timeout=120)
    assert "HiGHS" in out.stdout
