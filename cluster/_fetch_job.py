"""The job ``stressgrid fetch`` runs on the cluster: pack a run directory and print it to the job log.

    python -m stressgrid.cluster._fetch_job RUN_DIR [MAX_BYTES]

Prints ``STRESSGRID-FETCH-BEGIN <sha256> <bytes>``, the gzipped tar of the run's tables, manifest and
report as base64 lines, then ``STRESSGRID-FETCH-END``.  Task checkpoints (``tasks/``) stay behind.
"""

from __future__ import annotations

import base64
import hashlib
import io
import sys
import tarfile
from pathlib import Path

from stressgrid.cluster._jobs import FETCH_BEGIN, FETCH_END


def pack(run_dir: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for p in sorted(run_dir.rglob("*")):
            rel = p.relative_to(run_dir)
            if p.is_file() and rel.parts[0] != "tasks" and not p.name.startswith("."):
                tar.add(p, arcname=str(rel))
    return buf.getvalue()


def main(argv: list[str]) -> int:
    run_dir = Path(argv[0])
    limit = int(argv[1]) if len(argv) > 1 else 512 * 2**20
    if not (run_dir / "manifest.json").is_file():
        print(f"error: {run_dir} is not a finished run directory (no manifest.json)", file=sys.stderr)
        return 1
    data = pack(run_dir)
    if len(data) > limit:
        print(f"error: {run_dir} packs to {len(data)} bytes, over the {limit}-byte limit of fetch; "
              "write the run to shared storage instead", file=sys.stderr)
        return 1
    text = base64.b64encode(data).decode()
    out = sys.stdout
    out.write(f"{FETCH_BEGIN} {hashlib.sha256(data).hexdigest()} {len(data)}\n")
    for i in range(0, len(text), 16384):
        out.write(text[i:i + 16384] + "\n")
    out.write(FETCH_END + "\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
