"""Check that a report renders in a real browser (headless Chromium): screenshot is not blank, images decode.

Two Chromium runs on the page: ``--screenshot`` of the report itself, and ``--dump-dom`` of a temporary copy
with a small script appended that records, after ``load``, how many ``<img>`` elements decoded
(``complete && naturalWidth > 0``). The report itself stays script-free.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["check_report_renders", "find_chromium"]

_PROBE_ID = "__render_probe__"
_PROBE = f"""
<script>
window.addEventListener("load", () => {{
  const imgs = Array.from(document.images);
  const out = {{
    n_images: imgs.length,
    n_images_decoded: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
    image_sizes: imgs.map(i => [i.naturalWidth, i.naturalHeight]),
    n_external: Array.from(document.querySelectorAll("[src],[href]")).filter(
      e => /^(https?:)?\\/\\//.test(e.getAttribute("src") || e.getAttribute("href") || "")).length,
  }};
  const pre = document.createElement("pre");
  pre.id = "{_PROBE_ID}";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
}});
</script>
"""
_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
    "--virtual-time-budget=5000",
)
# Thresholds for "not blank": share of non-white pixels, distinct colours, share of saturated (plot) pixels.
MIN_NON_WHITE = 0.02
MIN_COLOURS = 64
MIN_COLOURED = 0.005


def find_chromium() -> str:
    """Path of a Chromium binary; raises with an install hint if there is none."""
    for candidate in ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(candidate)
        if path:
            return path
    raise RuntimeError("Chromium not found (looked for /usr/bin/chromium and chromium on PATH). "
                       "Install it with: apt-get install -y chromium")


def _run(chromium: str, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        cmd = [chromium, *_FLAGS, f"--user-data-dir={profile}", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def screenshot_stats(png_path: str | Path) -> dict[str, float]:
    """Pixel statistics of a screenshot: size, non-white share, distinct (5-bit) colours, saturated share."""
    from matplotlib.image import imread

    img = imread(str(png_path))[..., :3]
    if img.dtype != np.uint8:
        img = np.round(img * 255).astype(np.uint8)
    flat = img.reshape(-1, 3).astype(np.int16)
    non_white = (flat < 245).any(axis=1)
    quantised = (flat >> 3).astype(np.int32)
    codes = (quantised[:, 0] << 10) | (quantised[:, 1] << 5) | quantised[:, 2]
    saturation = flat.max(axis=1) - flat.min(axis=1)
    return {
        "width": int(img.shape[1]),
        "height": int(img.shape[0]),
        "non_white_fraction": float(non_white.mean()),
        "n_colours": int(np.unique(codes).size),
        "coloured_fraction": float((saturation > 60).mean()),
    }


def _probe_dom(chromium: str, html_path: Path, timeout: float) -> dict[str, Any]:
    page = html_path.read_text(encoding="utf-8")
    probed = page.replace("</body>", _PROBE + "</body>") if "</body>" in page else page + _PROBE
    with tempfile.TemporaryDirectory(prefix="report-probe-") as tmp:
        copy = Path(tmp) / html_path.name
        copy.write_text(probed, encoding="utf-8")
        proc = _run(chromium, ["--dump-dom", copy.as_uri()], timeout)
    match = re.search(rf'<pre id="{_PROBE_ID}">(.*?)</pre>', proc.stdout, re.DOTALL)
    if match is None:
        return {"dom_probe_error": (proc.stderr or proc.stdout)[-500:] or "probe element missing"}
    return json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def check_report_renders(
    html_path: str | Path,
    png_out: str | Path,
    window_size: tuple[int, int] = (1280, 2000),
    timeout: float = 90.0,
) -> dict[str, Any]:
    """Render ``html_path`` in headless Chromium, screenshot it to ``png_out`` and measure it.

    Returns the measurements plus ``ok`` (all checks passed) and ``problems`` (why not): the screenshot has
    ≥ 2 % non-white pixels, ≥ 64 distinct colours and ≥ 0.5 % saturated (plot) pixels; every ``<img>`` decoded
    with a non-zero size; no element loads an http(s) resource.
    """
    chromium = find_chromium()
    html_path = Path(html_path).resolve()
    png_out = Path(png_out).resolve()
    png_out.parent.mkdir(parents=True, exist_ok=True)
    png_out.unlink(missing_ok=True)
    width, height = window_size
    proc = _run(chromium, [f"--screenshot={png_out}", f"--window-size={width},{height}", html_path.as_uri()],
                timeout)
    result: dict[str, Any] = {"html": str(html_path), "screenshot": str(png_out), "chromium": chromium}
    problems: list[str] = []
    if png_out.is_file():
        result.update(screenshot_stats(png_out))
        if result["non_white_fraction"] < MIN_NON_WHITE:
            problems.append(f"screenshot nearly white ({result['non_white_fraction']:.3f} non-white)")
        if result["n_colours"] < MIN_COLOURS:
            problems.append(f"only {result['n_colours']} distinct colours in the screenshot")
        if result["coloured_fraction"] < MIN_COLOURED:
            problems.append(f"no plot-like coloured regions ({result['coloured_fraction']:.4f} saturated)")
    else:
        problems.append(f"no screenshot written (exit {proc.returncode}): {proc.stderr[-500:]}")
    result.update(_probe_dom(chromium, html_path, timeout))
    if "dom_probe_error" in result:
        problems.append(f"DOM probe failed: {result['dom_probe_error']}")
    else:
        if result["n_images"] == 0:
            problems.append("page has no <img>")
        if result["n_images_decoded"] != result["n_images"]:
            problems.append(f"{result['n_images'] - result['n_images_decoded']} image(s) failed to decode")
        if result["n_external"]:
            problems.append(f"{result['n_external']} element(s) reference external http(s) resources")
    result["ok"] = not problems
    result["problems"] = problems
    return result
