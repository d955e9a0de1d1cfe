"""Looking at an HTML report in a real headless Chromium, without a driver library.

Chromium's own command line does the two things the report tests need: ``--screenshot``
for a picture at a given window size, and ``--dump-dom`` to read the page back after its
scripts ran. To measure the layout, a copy of the page gets a small script that writes what
the browser computed (widths, the title, the headline) into the DOM, where ``--dump-dom``
shows it.

Run as a script to look at a report yourself:
``python -m tests.browser RUN/report.html shot.png [WIDTH]``.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# Runs once the page has loaded: the layout with every <details> closed, then with all of
# them open (an opened spec must not widen the page either).
PROBE = """<script>
window.addEventListener("load", function () {
  var root = document.documentElement;
  function widths() {
    return {scroll: root.scrollWidth, client: root.clientWidth, inner: window.innerWidth, height: root.scrollHeight};
  }
  var closed = widths();
  document.querySelectorAll("details").forEach(function (d) { d.open = true; });
  var opened = widths();
  var h1 = document.querySelector("h1");
  var out = document.createElement("pre");
  out.id = "layout-probe";
  out.textContent = JSON.stringify({closed: closed, opened: opened,
                                    title: document.title, h1: h1 ? h1.innerText : "",
                                    headers: Array.from(document.querySelectorAll("th")).map(function (th) {
                                      return th.innerText; })});
  document.body.appendChild(out);
});
</script>"""


def find_chromium() -> str | None:
    """The first Chromium-family browser on PATH, or None."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def _chromium(browser: str, args: list[str], width: int, height: int, profile: Path) -> str:
    command = [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
               f"--user-data-dir={profile}", f"--window-size={width},{height}", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {result.stderr[-2000:]}")
    return result.stdout


def measure(browser: str, page: Path, width: int, height: int = 900) -> dict:
    """What the browser lays out for ``page`` in a ``width`` x ``height`` window: the widths
    (scroll, client, inner) and height with <details> closed and opened, the document title,
    the first h1's text and the table headers."""
    with tempfile.TemporaryDirectory() as scratch:
        probed = Path(scratch) / page.name  # beside nothing of the run: the report is self-contained
        probed.write_text(page.read_text().replace("</body>", PROBE + "</body>", 1))
        dom = _chromium(browser, ["--dump-dom", probed.as_uri()], width, height, Path(scratch) / "profile")
    found = re.search(r'<pre id="layout-probe">(.*?)</pre>', dom, re.S)
    if not found:
        raise RuntimeError(f"the layout probe did not run in {page} (no #layout-probe in the DOM)")
    return json.loads(html.unescape(found.group(1)))


def screenshot(browser: str, page: Path, png: Path, width: int, height: int) -> Path:
    """A ``width`` x ``height`` screenshot of ``page`` (give the page's height for all of it)."""
    with tempfile.TemporaryDirectory() as scratch:
        _chromium(browser, [f"--screenshot={png.resolve()}", page.resolve().as_uri()], width, height,
                  Path(scratch) / "profile")
    return png


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print("usage: python -m tests.browser REPORT.html SHOT.png [WIDTH]", file=sys.stderr)
        return 2
    browser = find_chromium()
    if browser is None:
        print(f"no browser found on PATH (looked for {', '.join(BROWSERS)})", file=sys.stderr)
        return 1
    page, png, width = Path(argv[0]), Path(argv[1]), int(argv[2]) if len(argv) == 3 else 1400
    layout = measure(browser, page, width)
    screenshot(browser, page, png, width, min(layout["closed"]["height"] + 40, 8000))
    print(json.dumps({"width": width, **layout}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
