"""Screenshots of what a person sees in the Dagster UI, for the README: `make screenshots`.

Run against a running `make dev` (the samples loaded; materialize the analytics assets first for the
asset page to show a materialization): Debian's Chromium, headless, renders each page and writes
docs/img/*.png. Needs /usr/bin/chromium (`apt-get install chromium`); not part of `make test`.

    python docs/screenshots.py [--ui http://127.0.0.1:3000] [--out docs/img]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = {
    # name → path: the lineage graph from the raw files to the analytics tables, and one asset's page.
    "lineage": "/assets/canonical/entities?view=lineage&lineageScope=neighbors&lineageDepth=3",
    "asset-entities": "/assets/canonical/entities",
    "asset-customer-segments": "/assets/analytics/customer_segments",
}
# Chromium's network chatter is refused on a closed network: keep it from trying.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--hide-scrollbars",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1600,1000",
    "--virtual-time-budget=20000",
]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    sys.exit("no Chromium: `apt-get install chromium` (Debian) and run again")


def shoot(ui: str, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as profile:
        for name, path in PAGES.items():
            target = out / f"{name}.png"
            subprocess.run(
                [
                    chromium(),
                    *FLAGS,
                    f"--user-data-dir={profile}",
                    f"--screenshot={target}",
                    ui.rstrip("/") + path,
                ],
                check=True,
                capture_output=True,
                timeout=120,
            )
            print(f"{target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}: {ui}{path}")
            written.append(target)
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ui", default="http://127.0.0.1:3000", help="the Dagster UI of a running `make dev`")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = ap.parse_args()
    shoot(args.ui, args.out)


if __name__ == "__main__":
    main()
