"""The report as its users read it (spec/11): the bottom line, the legend, the terminal table, progress in logs,
resumable runs, the whole-model curve — each checked against a direct computation on the tiny model of
test_model_measure."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="natprec.model needs torch (pip install natprec[torch])")

from natprec.cli.report import add_parser  # noqa: E402
from natprec.model import measure, precision_from_curve  # noqa: E402
from natprec.model.report import write_report  # noqa: E402
from tests.test_model_measure import _nan_grad_model, tiny  # noqa: E402


@pytest.mark.spec("DEF-SITE")
def test_ggd_beta_at_the_fit_bound_is_marked_not_printed_as_a_shape():
    from natprec.model.info import tensor_measures
    from natprec.model.report import table_rows
    from natprec.reference import ggd

    w = np.linspace(-1, 1, 4096, dtype=np.float32).reshape(64, 64)  # flat top: the ML fit runs to β's upper end
    info = tensor_measures(w, is_weight=True)
    assert info["ggd_beta_at_bound"] and info["ggd_beta"] == pytest.approx(ggd.BETA_FIT_RANGE[1], rel=1e-3)
    g = tensor_measures(np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32), is_weight=True)
    assert not g["ggd_beta_at_bound"] and 1.5 < g["ggd_beta"] < 2.5
    doc = {"sites": [{"site": "w", "kind": "weight", "shape": [64, 64], "info": info}]}
    assert table_rows(doc)[0][5] == f"≥{info['ggd_beta']:.2f}"


@pytest.mark.spec("DEF-SITE-QUANTIZE")
def test_every_column_and_every_format_scaling_is_explained(tmp_path):
    from natprec.model.report import TABLE_HEADERS, TABLE_LEGEND, legend_lines

    assert list(TABLE_LEGEND) == TABLE_HEADERS  # one line per column, in table order
    doc = measure(tiny(), sites="0.weight", formats="int4,int8,nf4_absmax64,nvfp4,float8_e4m3fn", jacobian=False)
    scal = {f["name"]: f["scaling"] for f in doc["formats"]}
    assert scal["int4"] == scal["float8_e4m3fn"] and "per output channel (weights) or per tensor" in scal["int4"]
    assert scal["nf4_absmax64"].startswith("float32 absmax scale per 64 elements")
    assert scal["nvfp4"].startswith("float8_e4m3fn scale per 16 elements") and "float32 tensor scale" in scal["nvfp4"]
    lines = legend_lines(doc)
    assert len(lines) == len(TABLE_HEADERS) + len(doc["formats"]) and lines[-1].split()[0] == "float8_e4m3fn"
    page = write_report(doc, tmp_path, plots=False)["html"].read_text()
    assert "<h2>Legend</h2>" in page and page.count("<dt>") == len(lines)


@pytest.mark.spec("DEF-OPERATIONAL-PRECISION-SITE")
def test_progress_events_and_log_lines():
    import io

    from natprec.cli.report import progress_for

    events = []
    doc = measure(tiny(), formats="int", jacobian=False, progress=events.append)
    assert [e["phase"] for e in events[:2]] == ["baseline", "gradients"]
    sites = [e for e in events if e["phase"] == "site"]
    by_site = {s["site"]: s for s in doc["sites"]}  # parallel workers report sites as they finish
    assert sorted(e["site"] for e in sites) == sorted(by_site) and [e["done"] for e in sites] == [1, 2, 3, 4, 5, 6]
    assert all(e["total"] == 6 and e["eta_s"] >= 0 for e in sites) and sites[-1]["eta_s"] == 0
    assert all(e["b_star"] == by_site[e["site"]]["forward"]["b_star"] for e in sites)
    assert all(a["elapsed_s"] <= b["elapsed_s"] for a, b in zip(events, events[1:]))
    log = io.StringIO()  # not a terminal: one line per event, for logs
    doc = measure(tiny(), sites="0.weight", formats="int", jacobian=False, progress=progress_for(log))
    lines = log.getvalue().splitlines()
    assert lines[0].startswith("natprec: baseline done") and lines[1].startswith("natprec: gradients done")
    assert lines[2].startswith(f"natprec: [1/1] 0.weight: b*_v {doc['sites'][0]['forward']['b_star'] or '>8'} (")
    assert lines[2].endswith("about 0 s left)")


@pytest.mark.spec("DEF-OPERATIONAL-PRECISION-SITE")
def test_summary_bits_per_parameter_and_sizes(tmp_path):
    from natprec.model.summary import FLOAT32_BITS, summary_lines

    doc = measure(tiny(), formats="int,nf4_absmax64", tolerance=1e-4, jacobian=False)
    s = doc["summary"]
    weights = [x for x in doc["sites"] if x["kind"] == "weight"]
    want_bits = 0.0
    for w in weights:
        n, rows = int(np.prod(w["shape"])), w["shape"][0]
        if w["best_format"] is None:
            want_bits += n * FLOAT32_BITS
        elif w["best_format"].startswith("int"):
            want_bits += n * int(w["best_format"][3:]) + 32 * rows  # one float32 scale per output channel
        else:
            want_bits += n * w["points"][w["best_format"]]["effective_bits"]
    params = sum(int(np.prod(w["shape"])) for w in weights)
    assert s["weight_parameters"] == params == 8 * 16 + 16 * 16 + 16 * 4
    assert s["mean_bits_per_parameter"] == pytest.approx(want_bits / params)
    assert s["float32_bytes"] == params * 4 and s["quantized_bytes"] == pytest.approx(want_bits / 8)
    assert sum(s["formats_chosen"].values()) == len(weights)
    need = sorted(doc["sites"], key=lambda x: (-(x["forward"]["b_star"] or 9), -(x["amplification"] or 0.0)))
    assert [h["site"] for h in s["hardest"]] == [x["site"] for x in need[:5]]  # by need, then by amplification
    # Nothing within a tolerance no format meets: every weight stays float32, and the sentence says so.
    strict = measure(tiny(), sites="*.weight", formats="int", tolerance=1e-30, jacobian=False)["summary"]
    assert strict["mean_bits_per_parameter"] == FLOAT32_BITS and strict["weights_kept_float32"] == ["0.weight", "2.weight", "4.weight"]
    text = "\n".join(summary_lines(strict))
    assert "kept float32 (nothing within ε): 0.weight, 2.weight, 4.weight" in text and "1.0× smaller" in text
    page = write_report(doc, tmp_path, plots=False)["html"].read_text()
    assert page.index("Bottom line") < page.index("<table>") and "bits per parameter" in page


@pytest.mark.spec("DEF-OPERATIONAL-PRECISION-SITE")
def test_checkpoint_resumes_the_same_run_and_only_it(tmp_path):
    import json

    from natprec.model.checkpoint import SiteCheckpoint

    ck = tmp_path / "sites.jsonl"
    first = measure(tiny(), formats="int", jacobian=False, checkpoint=ck)
    lines = ck.read_text().splitlines()
    assert len(lines) == 1 + len(first["sites"]) and "settings" in json.loads(lines[0])
    # An interrupted run: the last record cut short. The rerun reuses the intact ones and measures the rest.
    ck.write_text("\n".join(lines[:3]) + "\n" + lines[3][: len(lines[3]) // 2])
    events = []
    again = measure(tiny(), formats="int", jacobian=False, checkpoint=ck, progress=events.append)
    assert [e["resumed"] for e in events if e["phase"] == "site"] == [True, True] + [False] * 4
    assert json.loads(json.dumps(again["sites"])) == json.loads(json.dumps(first["sites"]))  # same results either way
    assert any("2 site(s) reused" in n for n in again["notes"]) and again["claim"] == first["claim"]
    assert len(ck.read_text().splitlines()) == 1 + 6  # the header, 2 kept, 4 measured again
    # Any change of what a result depends on starts afresh: a tolerance, the weights.
    other = measure(tiny(), formats="int", tolerance=1e-2, jacobian=False, checkpoint=ck, progress=events.append)
    assert not any("reused" in n for n in other["notes"]) and any("different run" in n for n in other["notes"])
    mm = tiny()
    with torch.no_grad():
        mm.model[0].weight[0, 0] += 1e-3
    changed = measure(mm, formats="int", tolerance=1e-2, jacobian=False, checkpoint=ck)
    assert any("different run" in n for n in changed["notes"])
    assert SiteCheckpoint(ck, {"x": 1}).discarded and ck.read_text() == '{"settings": {"x": 1}}\n'


@pytest.mark.spec("DEF-OPERATIONAL-PRECISION-SITE")
def test_cli_report_resumes_and_fresh_starts_over(tmp_path, capsys, monkeypatch):
    import natprec.cli.report as cli_report

    monkeypatch.setattr(cli_report, "load_model", lambda *a, **k: tiny())
    p = argparse.ArgumentParser()
    add_parser(p.add_subparsers(dest="command"))
    argv = ["report", "--no-jacobian", "--no-plots", "--formats", "int", "--out", str(tmp_path)]
    args = p.parse_args(argv)
    assert args.run(args) == 0 and (tmp_path / cli_report.CHECKPOINT_FILE).exists()
    last = capsys.readouterr().out.splitlines()[-1]  # the time per phase closes the output
    assert last.startswith("time: baseline ") and all(w in last for w in ("forward", "resolution", "report files and plots"))
    args = p.parse_args(argv)
    assert args.run(args) == 0
    err = capsys.readouterr().err
    assert err.count("(reused)") == 6  # stderr is not a terminal here: one log line per site
    args = p.parse_args(argv + ["--fresh"])
    assert args.run(args) == 0 and "(reused)" not in capsys.readouterr().err


@pytest.mark.spec("DEF-TASK-DISTORTION")
def test_every_distortion_says_what_its_tolerance_means(tmp_path):
    from natprec.model.distortion import DISTORTION_UNITS, DISTORTIONS

    assert set(DISTORTION_UNITS) == set(DISTORTIONS) and "absolute" in DISTORTION_UNITS["mse"]
    doc = measure(tiny(), sites="0.weight", formats="int4,int8", jacobian=False)
    page = write_report(doc, tmp_path, plots=False)["html"].read_text()
    assert DISTORTION_UNITS["mse"].split(":")[0] in page


@pytest.mark.spec("DEF-OPERATIONAL-PRECISION-SITE")
def test_bits_vs_tolerance_band():
    from natprec.model.summary import bits_vs_tolerance

    # A full sweep measures every width: the band is a line, the weighted mean of b*_v(ε) read off each curve.
    doc = measure(tiny(), sites="*.weight", formats="int", full_sweep=True, jacobian=False)
    ws = doc["sites"]
    n = np.array([np.prod(s["shape"]) for s in ws])
    for c in bits_vs_tolerance(doc, (1e-6, 1e-4, 1e-2, 1.0)):
        b = [precision_from_curve({int(k): v for k, v in s["forward"]["curve"].items()}, c["tolerance"]) for s in ws]
        want = float(np.sum(n * np.array([9 if x is None else x for x in b])) / n.sum())
        assert c["low_bits"] == pytest.approx(want) and c["high_bits"] == pytest.approx(want)
    # After a bisection the band brackets the sweep's line.
    bis = measure(tiny(), sites="*.weight", formats="int", jacobian=False)
    for full, part in zip(bits_vs_tolerance(doc), bits_vs_tolerance(bis)):
        assert part["low_bits"] - 1e-12 <= full["low_bits"] <= part["high_bits"] + 1e-12
    assert bis["summary"]["bits_vs_tolerance"] == bits_vs_tolerance(bis)


@pytest.mark.spec("DEF-SITE")
def test_terminal_table_shows_its_columns_and_errors():
    from natprec.model.report import TABLE_HEADERS, TERMINAL_COLUMNS, format_table, table_rows

    doc = measure(_nan_grad_model(), formats="int4,int8", kinds=("weight",), jacobian=False)
    text = format_table(doc).splitlines()
    assert text[0].split("  ")[0] == "site" and [h for h in TERMINAL_COLUMNS if h not in text[0]] == []
    assert "support" not in text[0] and set(TERMINAL_COLUMNS) <= set(TABLE_HEADERS)
    assert any("ERROR NaNInputError" in line for line in text)  # a failed site keeps its error
    assert format_table(doc, TABLE_HEADERS).splitlines()[2].split()[:2] == table_rows(doc)[0][:2]


def _svg_points(el) -> list[tuple[float, float]]:
    return [tuple(map(float, xy.split(","))) for xy in el.get("points").split()]


@pytest.mark.spec("DEF-OPERATIONAL-PRECISION-SITE")
def test_site_drill_down_svg_draws_the_sites_curves_on_its_axes():
    """The drill-down (written as SVG, no matplotlib) holds the int curve on a log axis with ε, the uniform-step curve
    with Δv, one margin line per format in the page's swatch colour; a non-finite point is left out, not drawn."""
    import base64
    import xml.etree.ElementTree as ET

    from natprec.model.report import _hex, _site_svgs

    doc = measure(tiny(), tolerance=1e-4, full_sweep=True, formats="int,nf4_absmax64", jacobian=False)
    svgs = _site_svgs(doc, doc["sites"])
    assert list(svgs) == [s["site"] for s in doc["sites"]]
    ns = "{http://www.w3.org/2000/svg}"
    for s in doc["sites"]:
        root = ET.fromstring(base64.b64decode(svgs[s["site"]]))
        texts = [t.text for t in root.iter(ns + "text")]
        assert s["site"] in texts and f"need: b*_v = {s['forward']['b_star'] or '>8'}" in texts
        lines = root.findall(ns + "polyline")
        assert len(lines) == 2  # the int curve, the uniform-step curve
        curve = sorted((int(b), max(v, 1e-12)) for b, v in s["forward"]["curve"].items())
        pts = _svg_points(lines[0])
        assert len(pts) == len(curve) == len(root.findall(ns + "circle"))
        # x linear in b, y linear in log10 D (pixels grow downwards): one slope per axis fits every point.
        bx = np.polyfit([b for b, _ in curve], [x for x, _ in pts], 1)
        ly = np.polyfit(np.log10([v for _, v in curve]), [y for _, y in pts], 1)
        assert bx[0] > 0 and ly[0] < 0
        assert np.allclose(np.polyval(bx, [b for b, _ in curve]), [x for x, _ in pts], atol=0.06)
        assert np.allclose(np.polyval(ly, np.log10([v for _, v in curve])), [y for _, y in pts], atol=0.06)
        eps_y = np.polyval(ly, np.log10(1e-4))  # the dashed red ε line sits where the axis puts 1e-4
        red = [p for p in root.iter(ns + "path") if p.get("stroke") == "red"]
        assert len(red) == 2 and abs(float(red[0].get("d").split()[1].split("h")[0]) - eps_y) < 0.06
        res = sorted((int(k), v) for k, v in s["resolution"]["curve"].items())
        assert len(_svg_points(lines[1])) == len(res)
        margins = [p.get("stroke") for p in root.iter(ns + "path") if p.get("stroke-width") == "0.9"]
        assert margins == [_hex(i) for i in range(len(doc["formats"]))]
    s = dict(doc["sites"][0], forward=dict(doc["sites"][0]["forward"]))
    s["forward"]["curve"] = dict(s["forward"]["curve"], **{"2": float("inf")})
    root = ET.fromstring(base64.b64decode(_site_svgs(doc, [s])[s["site"]]))
    assert len(_svg_points(root.findall(ns + "polyline")[0])) == len(s["forward"]["curve"]) - 1
    assert "inf" not in base64.b64decode(_site_svgs(doc, [s])[s["site"]]).decode()


@pytest.mark.spec("DEF-OPERATIONAL-PRECISION-SITE")
def test_each_report_figure_is_drawn_once(tmp_path, monkeypatch):
    """tight_layout's leftover layout engine made savefig draw every figure twice (and a tight bounding box does):
    each figure is now laid out, then drawn once, into its file."""
    import matplotlib.figure

    from natprec.model.report import PLOT_FILES, _plots

    doc = measure(tiny(), tolerance=1e-4, formats="int,nf4_absmax64", jacobian=False)
    draws = []
    real = matplotlib.figure.Figure.draw
    monkeypatch.setattr(matplotlib.figure.Figure, "draw", lambda fig, renderer: draws.append(fig) or real(fig, renderer))
    paths = _plots(doc, tmp_path)
    assert [p.name for p in paths] == list(PLOT_FILES) and all(p.stat().st_size > 1000 for p in paths)
    assert len(draws) == len(PLOT_FILES) == len(set(map(id, draws)))
