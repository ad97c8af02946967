"""The report in a real browser: headless Chromium renders it, offline, without a console message."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from test_report import shared_small_run

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)

#: Appended to a copy of the report (the report itself has no script): once the page
#: has loaded, log how many images decoded and complain about any that did not.
_IMAGE_CHECK = """<script>
window.addEventListener("load", () => {
  const bad = [...document.images].filter((i) => !(i.complete && i.naturalWidth > 0));
  if (bad.length) console.error("broken images: " + bad.map((i) => i.alt).join(", "));
  console.log("images decoded: " + (document.images.length - bad.length));
});
</script>"""


def _chromium(page, screenshot, profile):
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
        "--enable-logging=stderr", "--v=0", f"--screenshot={screenshot}", "--window-size=1200,2000",
        page.resolve().as_uri(),
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.mark.realdata
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (Debian: apt-get install chromium)")
def test_report_renders_in_chromium(data_root, tmp_path_factory, tmp_path):
    from PIL import Image

    report = shared_small_run(data_root, tmp_path_factory) / "run" / "report.html"
    text = report.read_text(encoding="utf-8")

    screenshot = tmp_path / "report.png"
    done = _chromium(report, screenshot, tmp_path / "profile")
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []  # a script-free page: any console message is a problem
    with Image.open(screenshot) as image:
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape[:2] == (2000, 1200)
    coloured = (np.abs(pixels.astype(int) - 255).sum(axis=2) > 60).mean()
    assert coloured > 0.05 and pixels.std() > 20  # text and cells (a blank page: 0), the checks' text first

    checked = tmp_path / "checked.html"
    checked.write_text(text.replace("</body>", _IMAGE_CHECK + "\n</body>"), encoding="utf-8")
    done = _chromium(checked, tmp_path / "checked.png", tmp_path / "profile2")
    messages = re.findall(r":CONSOLE[^\]]*\] \"([^\"]*)\"", done.stderr)
    assert messages == [f"images decoded: {text.count('<img ')}"]
