"""DEF-OPERATIONAL-PRECISION-SITE — the report page in a real headless browser: it renders, its images load, its
bottom line, claim and legend are there.

Chromium loads a harness page that frames report.html and writes what it finds into its own DOM, which
``--dump-dom`` prints.  Without a Chromium the test skips, unless NATPREC_REQUIRE_BROWSER is set (CI sets it
after installing one), where a missing browser fails.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess

import pytest

torch = pytest.importorskip("torch", reason="the report needs torch (pip install natprec[torch])")

from natprec.model import MeasuredModel, measure  # noqa: E402
from natprec.model.report import PLOT_FILES, write_report  # noqa: E402

HARNESS = """<!DOCTYPE html><html><body><pre id="out">pending</pre>
<iframe id="f" src="report.html" width="1400" height="900"></iframe>
<script>
document.getElementById("f").addEventListener("load", () => {
  const d = document.getElementById("f").contentDocument;
  const imgs = Array.from(d.images);
  document.getElementById("out").textContent = JSON.stringify({
    images: imgs.length, loaded: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
    headings: Array.from(d.querySelectorAll("h2")).map(h => h.textContent),
    rows: d.querySelectorAll("table tr").length, legend: d.querySelectorAll("dt").length,
    links: Array.from(d.querySelectorAll("td a")).filter(a => d.getElementById(a.hash.slice(1))).length});
});
</script></body></html>
"""


def _browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("NATPREC_REQUIRE_BROWSER"):
        pytest.fail("NATPREC_REQUIRE_BROWSER is set but no Chromium is on PATH")
    pytest.skip("no headless Chromium on PATH (apt install chromium)")


def _inspect(browser: str, folder) -> dict:
    (folder / "check.html").write_text(HARNESS, encoding="utf-8")
    out = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
                          "--virtual-time-budget=10000", "--dump-dom", (folder / "check.html").as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    found = re.search(r'<pre id="out">([^<]*)</pre>', out)
    assert found and found.group(1) != "pending", out[-2000:]
    return json.loads(found.group(1).replace("&quot;", '"'))


def _doc():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4)).float()
    g = torch.Generator().manual_seed(1)
    mm = MeasuredModel(model=model, batches=[torch.randn(12, 8, generator=g) for _ in range(2)], distortion="mse",
                       description="tiny")
    return measure(mm, formats="int,nf4_absmax64", jacobian=False)


@pytest.mark.spec("DEF-OPERATIONAL-PRECISION-SITE")
def test_report_page_renders_with_its_images_in_a_browser(tmp_path):
    browser = _browser()
    doc = _doc()
    write_report(doc, tmp_path)
    seen = _inspect(browser, tmp_path)
    images = len(PLOT_FILES) + len(doc["sites"])  # the plots, then one drill-down per site
    assert seen["images"] == images and seen["loaded"] == images and seen["links"] == len(doc["sites"])
    assert seen["headings"][:3] == ["Bottom line", "Does information predict the precision a site needs?", "Legend"]
    assert seen["headings"][-1] == "Each site"
    assert seen["rows"] == len(doc["sites"]) + 1 and seen["legend"] > 10
    # A broken image is seen as broken: the check can fail.
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    (tmp_path / "report.html").write_text(re.sub(r"base64,[A-Za-z0-9+/]{40}", "base64,!!!!", page, count=1), encoding="utf-8")
    broken = _inspect(browser, tmp_path)
    assert broken["images"] == images and broken["loaded"] == images - 1
    # So is a drill-down whose SVG is not well-formed (they are written as text, not by a plotting library).
    cut = base64.b64encode(b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"><path').decode()
    (tmp_path / "report.html").write_text(re.sub(r"svg\+xml;base64,[A-Za-z0-9+/=]+", "svg+xml;base64," + cut, page, count=1),
                                          encoding="utf-8")
    broken = _inspect(browser, tmp_path)
    assert broken["images"] == images and broken["loaded"] == images - 1
