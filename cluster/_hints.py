"""What to do about the failures a user meets when first joining a cluster, read from Ray's error text.

Ray's messages are long and say what failed (a missing module in a job's log, a version mismatch over
five lines, an authentication error with a paragraph of advice); :func:`explain_failure` turns the
common ones into one sentence that says what to do with stressgrid's own options.
"""

from __future__ import annotations

import re

__all__ = ["explain_failure", "first_line", "TOKEN_MISSING", "TOKEN_REFUSED", "SHIP_CODE"]

TOKEN_MISSING = ("the cluster requires an authentication token and this client sent none: set RAY_AUTH_MODE=token "
                 "and RAY_AUTH_TOKEN to the cluster's token (or put the token in ~/.ray/auth_token, or in a file "
                 "named by RAY_AUTH_TOKEN_PATH)")
TOKEN_REFUSED = ("the cluster refused this client's authentication token: set RAY_AUTH_TOKEN (or ~/.ray/auth_token, "
                 "or the file named by RAY_AUTH_TOKEN_PATH) to the token the cluster was started with")
SHIP_CODE = ("the cluster does not have stressgrid installed: submit again with --ship-code (this checkout's source "
             "travels with the job; add --pip PACKAGE for any dependency the cluster also lacks)")

#: import names whose pip package has another name
_PIP_NAMES = {"sklearn": "scikit-learn", "yaml": "pyyaml", "jaxlib": "jax", "pydantic_core": "pydantic",
              "google": "protobuf"}

_NO_MODULE = re.compile(r"No module named '([\w.]+)'")
_VERSIONS = re.compile(r"cluster was started with:\s*Ray:\s*(\S+)\s*Python:\s*(\S+).*?was started with:\s*"
                       r"Ray:\s*(\S+)\s*Python:\s*(\S+)", re.S)


def first_line(text: str) -> str:
    """The first non-empty line of ``text``, stripped (error messages on one line)."""
    return next((line.strip() for line in str(text).splitlines() if line.strip()), "")


def explain_failure(text: str) -> str | None:
    """One sentence saying what to do about a failure whose message or log is ``text``, or None when it is
    not one of the known onboarding failures.

    Known: a job that cannot import ``stressgrid`` (``--ship-code``) or another package (``--pip``); a
    client whose Ray or Python version differs from the cluster's; a cluster with token authentication
    and a client without the token, or with another token.
    """
    text = str(text)
    m = _NO_MODULE.search(text)
    if m:
        top = m.group(1).split(".")[0]
        if top == "stressgrid":
            return SHIP_CODE
        pkg = _PIP_NAMES.get(top, top.replace("_", "-"))
        return (f"the cluster lacks the Python package {pkg!r} (module {m.group(1)!r}): submit again with --pip {pkg}, "
                "or install it in the cluster's image")
    m = _VERSIONS.search(text)
    if "Version mismatch" in text and m:
        cluster_ray, cluster_py, here_ray, here_py = m.groups()
        return (f"version mismatch: the cluster runs Ray {cluster_ray} on Python {cluster_py}, this environment Ray "
                f"{here_ray} on Python {here_py}: join it from an environment with the same versions "
                f"(pip install 'ray[default]=={cluster_ray}' on Python {cluster_py}), or send the batch with "
                "'stressgrid submit' (the Jobs API needs no matching Ray here)")
    low = text.lower()
    if "invalid authentication token" in low or "token is invalid" in low or ("forbidden" in low and "token" in low):
        return TOKEN_REFUSED
    if ("missing authentication token" in low or "authentication required" in low or "unauthenticated" in low
            or "invalidauthtoken" in low or "no authentication token" in low):
        return TOKEN_MISSING
    return None
