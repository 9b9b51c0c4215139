"""Open a posebench HTML report in headless Chromium: no console errors, every image loaded.

Run: .venv/bin/python benchmarks/check_report_html.py runs/demo/report/report.html
Needs Debian's chromium (`apt-get install chromium`). Exits 1 on any console error or broken image.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PROBE = """<script>
window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  const broken = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt);
  document.title = 'POSEBENCH-CHECK ' + JSON.stringify({images: imgs.length, broken: broken,
                                                      tables: document.querySelectorAll('table').length});
});
</script>"""


def main() -> int:
    report = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/demo/report/report.html").resolve()
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        sys.exit("headless Chromium not found: apt-get install chromium")
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "report.html"
        page.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
        proc = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp}/profile", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000",
             "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    match = re.search(r"POSEBENCH-CHECK (\{.*?\})</title>", proc.stdout)
    if not match:
        print(proc.stderr[-2000:])
        sys.exit("the page did not finish loading in Chromium")
    status = json.loads(match.group(1).replace("&quot;", '"'))
    # only the page's own console messages count (Chromium logs its sandbox/GPU chatter too)
    console_errors = [line for line in proc.stderr.splitlines() if "CONSOLE" in line and "ERROR" in line.upper()]
    print(f"{report}: {status['images']} images ({len(status['broken'])} broken), {status['tables']} tables, "
          f"{len(console_errors)} console errors")
    for line in console_errors:
        print("  ", line)
    return 0 if status["images"] and not status["broken"] and not console_errors else 1


if __name__ == "__main__":
    raise SystemExit(main())
