#!/usr/bin/env python
"""Render a chip Monte Carlo report in headless Chromium and check it is not blank.

Usage: ``python scripts/check_report.py RUN_DIR [--out DIR] [--screenshot PNG]``. Writes the report first if
``DIR/report.html`` is missing (DIR defaults to ``RUN_DIR/report``), prints the measurements as JSON and exits
non-zero if a check failed. Needs Chromium (``apt-get install -y chromium``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from report_browser import check_report_renders  # scripts/report_browser.py

from analog_peft.montecarlo.report import write_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="run directory with results.csv and manifest.json")
    parser.add_argument("--out", type=Path, default=None, help="report directory (default RUN_DIR/report)")
    parser.add_argument("--screenshot", type=Path, default=None, help="PNG path (default OUT/screenshot.png)")
    parser.add_argument("--rebuild", action="store_true", help="rewrite the report even if it exists")
    args = parser.parse_args(argv)

    out = args.out or args.run_dir / "report"
    html = out / "report.html"
    if args.rebuild or not html.is_file():
        write_report(args.run_dir, out_dir=out)
    result = check_report_renders(html, args.screenshot or out / "screenshot.png")
    print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
