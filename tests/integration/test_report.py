"""`deltann report`: the HTML report of a real campaign. label_flip.onnx at two ONNX Runtime
optimisation levels (which disagree on its calibration image) and OpenCV DNN, over random images,
copies of the calibration image (one whose key holds HTML, one deleted before the report) and
class names that hold HTML. The report must agree with `deltann compare --json`, escape every name,
load nothing from outside, and render its charts without a script error in headless Chromium."""
import base64
import io
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from deltann_testlib import Deltann, write_random_images

# The list file names this image as HTML_KEY: a folder "<b>x<" holding the file `b>&"'.png`.
HTML_KEY = "<b>x</b>&\"'.png"
HTML_KEY_ESCAPED = "&lt;b&gt;x&lt;/b&gt;&amp;&quot;&#39;.png"
GONE_KEY = "gone.png"  # deleted after the run: the gallery must show a placeholder
CLASS_NAMES = ["cat <i>tabby</i>", "dog & co"]
CHROMIUM_TIMEOUT_S = 180


# --- a small DOM, so that checks look at elements rather than at text -------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


class Element:
    def __init__(self, tag, attrs, parent=None):
        self.tag, self.attrs, self.parent = tag, dict(attrs), parent
        self.children = []  # Elements and str

    def iter(self, tag=None):
        for child in self.children:
            if isinstance(child, Element):
                if tag is None or child.tag == tag:
                    yield child
                yield from child.iter(tag)

    def find(self, tag, **attrs):
        for e in self.iter(tag):
            if all(e.attrs.get(k) == v for k, v in attrs.items()):
                return e
        return None

    def text(self):
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def classes(self):
        return (self.attrs.get("class") or "").split()


class TreeBuilder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = self.current = Element("#document", {})

    def handle_starttag(self, tag, attrs):
        element = Element(tag, attrs, self.current)
        self.current.children.append(element)
        if tag not in VOID:
            self.current = element

    def handle_startendtag(self, tag, attrs):
        self.current.children.append(Element(tag, attrs, self.current))

    def handle_endtag(self, tag):
        node = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data):
        self.current.children.append(data)


def parse_html(text):
    builder = TreeBuilder()
    builder.feed(text)
    builder.close()
    return builder.root


def table_rows(table):
    """[[cell text]] of a table, header row included, whitespace collapsed."""
    return [[" ".join(cell.text().split()) for cell in row.iter() if cell.tag in ("td", "th")]
            for row in table.iter("tr")]


def same_pixels_copy(source, target):
    """`source`'s pixels in another PNG file (a text chunk naming the copy makes the bytes differ)."""
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("copy", target.name)
    with Image.open(source) as image:
        image.save(target, format="PNG", pnginfo=info)


# --- the campaign ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def campaign(models, deltann_bin, tmp_path_factory):
    info = json.loads((models.dir / "label_flip.json").read_text())
    work = tmp_path_factory.mktemp("report")
    (work / "cache").mkdir()
    deltann = Deltann(deltann_bin, work / "cache")
    images = work / "images"
    randoms = write_random_images(images, [(12, 12), (9, 14), (16, 16)], seed=7)
    flip_image = models.dir / info["input_image"]
    shutil.copy(flip_image, images / info["input_image"])
    (images / "<b>x<").mkdir()
    # The same pixels (the variants disagree on them too) in files of their own: a byte-identical
    # copy would be run once, as the first.
    same_pixels_copy(flip_image, images / HTML_KEY)
    same_pixels_copy(flip_image, images / GONE_KEY)
    label_a = info["label_a"]
    listed = [(info["input_image"], label_a), (HTML_KEY, label_a), (GONE_KEY, label_a)]
    listed += [(p.name, n % 2) for n, p in enumerate(randoms)]
    (images / "list.txt").write_text("".join(f"{key} {label}\n" for key, label in listed))

    classes = work / "classes.txt"
    classes.write_text("".join(name + "\n" for name in CLASS_NAMES))
    spec = json.loads((models.dir / "label_flip.spec.json").read_text())
    spec["output"]["class_names"] = str(classes)
    spec_path = work / "label_flip.spec.json"
    spec_path.write_text(json.dumps(spec))

    db = work / "report.db"
    envs = [f"ort:opt={info['level_a']},threads=1", f"ort:opt={info['level_b']},threads=1",
            "opencv:opt=off,threads=1"]
    args = ["run", "--model", models.label_flip, "--spec", spec_path, "--images",
            images / "list.txt", "--db", db, "--repeat", 20, "--warmup", 1]
    for env in envs:
        args += ["--env", env]
    deltann.run(*args)
    # One stored localisation (on the image whose key holds HTML): the report plots it.
    localizing = deltann.run("localize", "--db", db, "--a", envs[0], "--b", envs[2], "--image",
                             HTML_KEY, "--json", expect_rc=None)
    localized = json.loads(localizing.stdout)
    # 3 when a layer diverges, 0 when none does.
    assert localizing.returncode == (3 if localized["jump"] else 0), localizing.describe()
    (images / GONE_KEY).unlink()

    compare = json.loads(deltann.run("compare", "--db", db, "--json").stdout)
    report = work / "report.html"
    run = deltann.run("report", "--db", db, "-o", report)
    return {"deltann": deltann, "db": db, "work": work, "report": report, "run": run,
            "compare": compare, "info": info, "labels": dict(listed), "localized": localized,
            "html": report.read_text(encoding="utf-8")}


@pytest.fixture(scope="module")
def dom(campaign):
    return parse_html(campaign["html"])


def section(dom, name):
    element = dom.find("section", id=name)
    assert element is not None, f"no <section id={name}> in the report"
    return element


# --- content -----------------------------------------------------------------------------------

def test_report_is_written(campaign):
    assert str(campaign["report"]) in campaign["run"].stdout
    html = campaign["html"]
    assert html.startswith("<!DOCTYPE html>")
    assert html.rstrip().endswith("</html>")
    assert not Path(str(campaign["report"]) + ".tmp").exists()


def test_header_names_model_dataset_host_and_version(campaign, dom):
    facts = {row[0]: row[1] for row in table_rows(section(dom, "summary").find("table"))}
    assert facts["Model"].startswith("label_flip "), facts["Model"]
    assert "list.txt" in facts["Dataset"]
    assert facts["Host"] not in ("", "\u2013")
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", facts["Campaign started"])
    version = re.search(r"\d+\.\d+\.\d+", campaign["deltann"].run("--version").stdout).group(0)
    assert version in facts["deltann version"]
    counts = " ".join(section(dom, "summary").text().split())
    assert "3 variants" in counts and "6 images" in counts and "6 labelled" in counts


def test_names_and_class_names_are_escaped(campaign):
    html = campaign["html"]
    assert "<b>x</b>" not in html
    assert HTML_KEY_ESCAPED in html
    assert "<i>tabby</i>" not in html
    assert "cat &lt;i&gt;tabby&lt;/i&gt;" in html and "dog &amp; co" in html


def test_variants_table_matches_compare(campaign, dom):
    variants = campaign["compare"]["variants"]
    rows = table_rows(section(dom, "variants").find("table"))
    assert len(rows) == 1 + len(variants)
    header = rows[0]
    for n, (row, v) in enumerate(zip(rows[1:], variants), start=1):
        cell = dict(zip(header, row))
        assert cell["#"] == f"#{n}"
        assert cell["environment"] == v["env"]
        assert cell["status"] == v["status"]
        assert cell["images"] == str(v["images"])
        assert cell["failures"] == str(v["failures"])
        # The accuracy with its 95% interval, as in the terminal.
        low, high = v["top1_accuracy_ci_low"], v["top1_accuracy_ci_high"]
        assert cell["top-1"] == (f"{100 * v['top1_accuracy']:.1f}% "
                                 f"[{100 * low:.1f}\u2013{100 * high:.1f}]"), cell
        assert cell["samples"] == str(v["samples"])
        if v["status"] == "done":
            assert v["samples"] == 20 * 6


def test_heatmap_matches_compare(campaign, dom):
    envs = [v["env"] for v in campaign["compare"]["variants"]]
    rows = table_rows(section(dom, "heatmap").find("table"))
    assert rows[0][1:] == [f"#{n}" for n in range(1, len(envs) + 1)]
    for pair in campaign["compare"]["pairs"]:
        i, j = envs.index(pair["a"]) + 1, envs.index(pair["b"]) + 1
        expected = f"{pair['top1_differences']}/{pair['images']}"
        assert rows[i][j] == expected and rows[j][i] == expected, (pair["a"], pair["b"])
    # The two ONNX Runtime levels disagree on the three copies of the calibration image.
    assert int(rows[1][2].split("/")[0]) >= 3


def test_findings_are_ranked_with_reproduce_commands(campaign, dom):
    findings = campaign["compare"]["findings"]
    items = [li for li in section(dom, "findings").iter("li")]
    assert len(items) == len(findings) and findings
    for li, finding in zip(items, findings):
        assert finding["kind"] in li.text()
        assert " ".join(finding["title"].split()) in " ".join(li.text().split())
        if finding["reproduce"]:
            assert li.find("pre").text() == finding["reproduce"]
    flips = [li for li, f in zip(items, findings) if f["kind"] == "label_difference"]
    assert flips, "the label_flip pair must give a label_difference finding"
    assert any(HTML_KEY in li.text() for li in flips)


def test_pairs_grouped_by_axis(campaign, dom):
    axes = section(dom, "axes")
    headings = [" ".join(h.text().split()) for h in axes.iter("h3")]
    expected = {}
    for pair in campaign["compare"]["pairs"]:
        axis = pair["axis"] or "unclassified"
        expected[axis] = expected.get(axis, 0) + 1
    for axis, count in expected.items():
        label = f"{axis} ({count} pair{'s' if count != 1 else ''})"
        assert label in headings, (label, headings)
    tables = list(axes.iter("table"))
    assert sum(len(table_rows(t)) - 1 for t in tables) == len(campaign["compare"]["pairs"])
    header = table_rows(tables[0])[0]
    for column in ("top-1 diff", "near-tie / confident", "top-5 Jaccard", "rank corr.", "max |d|",
                   "rel L2", "speed ratio B/A", "p", "p adj.", "significant"):
        assert column in header


def test_chart_data_is_downsampled_cdf(campaign, dom):
    script = dom.find("script", id="deltann-data")
    data = json.loads(script.text())
    assert len(data["variants"]) == 3
    for v in data["variants"]:
        cdf = v["cdf"]
        assert 2 <= len(cdf) <= 200, v["env"]
        xs, ys = [p[0] for p in cdf], [p[1] for p in cdf]
        assert xs == sorted(xs) and ys == sorted(ys) and ys[-1] == 1
        assert v["p10"] <= v["p50"] <= v["p90"]


def test_gallery_shows_disagreeing_images(campaign, dom):
    from PIL import Image

    differing = set()
    for pair in campaign["compare"]["pairs"]:
        differing.update(pair["differing_images"])
    assert {HTML_KEY, GONE_KEY, campaign["info"]["input_image"]} <= differing
    cards = {" ".join(card.find("div", **{"class": "key"}).text().split()): card
             for card in section(dom, "gallery").iter("figure")}
    assert set(cards) == differing

    img = cards[HTML_KEY].find("img")
    assert img is not None and img.attrs["alt"] == HTML_KEY
    prefix = "data:image/jpeg;base64,"
    assert img.attrs["src"].startswith(prefix)
    thumbnail = Image.open(io.BytesIO(base64.b64decode(img.attrs["src"][len(prefix):])))
    assert thumbnail.format == "JPEG" and max(thumbnail.size) <= 160

    assert cards[GONE_KEY].find("img") is None
    assert "image file not found" in cards[GONE_KEY].text()

    envs = [v["env"] for v in campaign["compare"]["variants"]]
    rows = table_rows(cards[HTML_KEY].find("table"))
    assert [row[0] for row in rows[1:]] == [f"#{n}" for n in range(1, len(envs) + 1)]
    info = campaign["info"]
    assert rows[1][1].startswith(CLASS_NAMES[info["label_a"]])
    assert rows[2][1].startswith(CLASS_NAMES[info["label_b"]])


def test_report_is_self_contained(campaign, dom):
    html = campaign["html"]
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, re.IGNORECASE)
    for element in dom.iter():
        for attribute in ("src", "href"):
            value = element.attrs.get(attribute)
            if value is not None:
                assert value.startswith(("data:", "#")), (element.tag, attribute, value[:80])
    assert dom.find("link") is None
    scripts = list(dom.iter("script"))
    assert scripts and all("src" not in s.attrs for s in scripts)
    # Chart.js is inlined, not referenced.
    assert any("Chart.js v3" in s.text() for s in scripts)


def test_missing_chart_library_is_a_clear_error(campaign):
    out = campaign["work"] / "no-charts.html"
    result = campaign["deltann"].run("report", "--db", campaign["db"], "-o", out, "--chart-js",
                                     campaign["work"] / "nowhere" / "chart.min.js", expect_rc=None)
    assert result.returncode != 0, result.describe()
    assert "libjs-chart.js" in result.stderr and "nowhere" in result.stderr, result.describe()
    assert not out.exists()


def test_localization_is_plotted_along_the_graph(campaign, dom):
    """`deltann localize --db` keeps its result in the campaign; the report shows it: the pair,
    the image (its HTML-holding key escaped), the first jump, and a line chart whose data holds
    one relative error per matched layer."""
    part = section(dom, "localizations")
    heading = part.find("h3")
    assert heading is not None and HTML_KEY in heading.text(), part.text()[:500]
    assert heading.find("b") is None  # the key is text, not markup
    facts = {row[0]: row[1] for row in table_rows(part.find("table"))}
    assert "first jump" in facts and "layers matched" in facts, facts
    assert part.find("canvas", id="chart-localization-1") is not None
    data = json.loads(dom.find("script", id="deltann-data").text())
    [series] = data["localizations"]
    layers = campaign["localized"]["layers"]
    assert len(series["layers"]) == len(series["rel"]) == len(layers) > 0
    for plotted, layer in zip(series["rel"], layers):
        if isinstance(layer.get("rel_l2"), (int, float)):
            assert plotted == pytest.approx(max(layer["rel_l2"], 1e-16))


# --- in a real browser -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def chromium():
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("chromium is not installed (Debian package chromium; scripts/setup "
                    "installs it)")
    return path


def run_chromium(chromium, profile, *args):
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-dev-shm-usage", f"--user-data-dir={profile}", *args]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S)
    assert proc.returncode == 0, f"{command}\n{proc.stderr[-4000:]}"
    return proc


def test_charts_render_without_script_errors(campaign, chromium, tmp_path):
    proc = run_chromium(chromium, tmp_path / "profile", "--dump-dom",
                        campaign["report"].as_uri())
    rendered = parse_html(proc.stdout)
    body = rendered.find("body")
    assert body is not None, proc.stdout[:2000]
    errors = rendered.find("pre", id="js-errors")
    assert errors is not None and errors.text() == "", errors.text() if errors else None
    # The timing charts and the localisation's chart.
    assert int(body.attrs.get("data-charts-rendered", "0")) >= 3, body.attrs


def test_screenshot(campaign, chromium, tmp_path):
    from PIL import Image

    build_dir = os.environ.get("DELTANN_BUILD_DIR")
    folder = Path(build_dir) / "test-artifacts" if build_dir else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    shot = folder / "report.png"
    if shot.exists():
        shot.unlink()
    run_chromium(chromium, tmp_path / "profile", "--hide-scrollbars", f"--screenshot={shot}",
                 "--window-size=1400,3000", campaign["report"].as_uri())
    assert shot.is_file() and shot.stat().st_size > 50_000, shot
    with Image.open(shot) as image:
        assert image.size == (1400, 3000)
        # A rendered page, not a blank one: many distinct colours (text, tables, chart lines).
        colours = image.convert("RGB").resize((350, 750)).getcolors(maxcolors=1 << 16)
        assert colours is None or len(colours) > 50
