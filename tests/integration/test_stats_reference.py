"""deltann's statistics against scipy and numpy on the same numbers (docs/ANALYSIS.md says where
they agree and how closely). A real campaign of the test-only engine gets chosen timings (with
ties) and full outputs (one with a NaN) in place of its own; `deltann export` then analyses it and
every number of its variants and pairs is recomputed here independently: percentiles and the
coefficient of variation with numpy, the distribution-free median interval from scipy's binomial
distribution, the Mann-Whitney p-value with scipy.stats.mannwhitneyu, Holm's adjustment by its
definition, and cosine, relative L2, max |d|, min_rtol and the atol/rtol check with numpy."""
import json
import math
from itertools import combinations

import numpy as np
import pytest

from deltann_testlib import (Deltann, images_by_key, overwrite_result, run_testing_engine_campaign,
                             variants_by_env)

scipy_stats = pytest.importorskip("scipy.stats")

ENVS = ["testing:threads=1", "testing:threads=2", "testing:threads=3", "testing:threads=4"]
IMAGES = 5
SAMPLES = 40     # per image and variant
ELEMENTS = 1003  # per output: 250 blocks of four and a tail of three
ALPHA, ATOL, RTOL, CONFIDENCE = 0.05, 1e-4, 1e-3, 0.95


def number(v):
    """A JSON number of the export, where NaN and infinities are strings."""
    return float(v) if isinstance(v, str) else v


@pytest.fixture(scope="module")
def campaign(models, deltann_bin, test_workers, tmp_path_factory):
    work = tmp_path_factory.mktemp("stats")
    deltann = Deltann(deltann_bin, work / "cache")
    db = run_testing_engine_campaign(deltann, models.tiny, test_workers, work, ENVS, IMAGES)
    variants = sorted(variants_by_env(db).values(), key=lambda v: v["id"])
    images = sorted(row["id"] for row in images_by_key(db).values())
    assert len(variants) == len(ENVS) and len(images) == IMAGES

    rng = np.random.default_rng(2024)
    samples, outputs = {}, {}
    base = [rng.standard_normal(ELEMENTS).astype(np.float32) for _ in images]
    for v, variant in enumerate(variants):
        # Log-normal timings 1 % slower per variant, rounded to 10 us so that values tie: p-values
        # from about 1e-6 to 0.5 among the six pairs.
        scale = 10e6 * (1 + 0.01 * v)
        for i, image in enumerate(images):
            ns = np.round(scale * rng.lognormal(0, 0.05, SAMPLES) / 1e4).astype(np.int64) * 10_000
            out = base[i] + (rng.standard_normal(ELEMENTS) * 1e-3 * v).astype(np.float32)
            if v == 3 and i == 2:
                out[7] = np.nan  # one image of one variant: its pairs' cosine is NaN
            overwrite_result(db, variant["id"], image, samples_ns=ns, output=out)
            samples.setdefault(variant["env"], []).append(ns)
            outputs[variant["env"], image] = out.astype(np.float64)

    out = work / "export.json"
    deltann.run("export", "--db", db, "--format", "json", "-o", out)
    exported = json.loads(out.read_text())
    return {"export": exported, "images": images,
            "samples_ms": {env: np.sort(np.concatenate(s)) / 1e6 for env, s in samples.items()},
            "outputs": outputs}


def test_percentiles_cv_and_median_interval_agree_with_numpy_and_scipy(campaign):
    exported = {v["env"]: v for v in campaign["export"]["variants"]}
    assert len(exported) == len(ENVS)
    for env, ms in campaign["samples_ms"].items():
        v = exported[env]
        n = len(ms)
        assert v["samples"] == n == IMAGES * SAMPLES
        for field, q in [("median_ms", 50), ("p90_ms", 90), ("p99_ms", 99)]:
            assert v[field] == pytest.approx(np.percentile(ms, q), rel=1e-14, abs=0), field
        assert v["cv"] == pytest.approx(np.std(ms, ddof=1) / np.mean(ms), rel=1e-12)
        # [x_(k), x_(n+1-k)] with k the largest rank whose binomial tail F(k - 1) <= alpha / 2.
        k = max(j for j in range(1, (n + 1) // 2 + 1)
                if j == 1 or scipy_stats.binom.cdf(j - 1, n, 0.5) <= (1 - CONFIDENCE) / 2)
        assert (v["median_ci_low_ms"], v["median_ci_high_ms"]) == (ms[k - 1], ms[n - k])


def holm(p):
    """Holm's adjusted p-values, written from the definition: the i-th smallest p times
    (m - i + 1), capped at 1, and never below the adjusted value of a smaller p."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    adjusted, running = [0.0] * len(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def test_mann_whitney_and_holm_agree_with_scipy(campaign):
    pairs = campaign["export"]["pairs"]
    ms = campaign["samples_ms"]
    assert len(pairs) == 6
    for p in pairs:
        # deltann: two-sided, normal approximation with tie and continuity correction.
        want = scipy_stats.mannwhitneyu(ms[p["a"]], ms[p["b"]], alternative="two-sided",
                                        use_continuity=True, method="asymptotic").pvalue
        assert p["p_value"] == pytest.approx(want, rel=1e-9, abs=1e-300), (p["a"], p["b"])
        assert p["speed_ratio"] == pytest.approx(np.median(ms[p["b"]]) / np.median(ms[p["a"]]),
                                                 rel=1e-14)
    raw = [p["p_value"] for p in pairs]
    assert min(raw) < 1e-4 and max(raw) > 0.05  # the family holds clear and unclear pairs
    for p, want in zip(pairs, holm(raw)):
        assert p["p_adjusted"] == pytest.approx(want, rel=1e-14)
        excludes_one = p["speed_ratio_ci_low"] > 1 or p["speed_ratio_ci_high"] < 1
        assert p["significant"] == (want < ALPHA and excludes_one)


def test_output_metrics_agree_with_numpy(campaign):
    outputs = campaign["outputs"]
    for p in campaign["export"]["pairs"]:
        a = [outputs[p["a"], image] for image in campaign["images"]]
        b = [outputs[p["b"], image] for image in campaign["images"]]
        broken = any(np.isnan(x).any() != np.isnan(y).any() for x, y in zip(a, b))
        if broken:
            # A NaN on one side in one image: the worst image's cosine is undefined, the
            # differences infinite (docs/ANALYSIS.md, "Numeric difference of full outputs").
            assert math.isnan(number(p["cosine"]))
            for field in ("relative_l2", "max_abs_diff", "min_atol", "min_rtol"):
                assert number(p[field]) == math.inf, field
            continue
        d = [np.abs(x - y) for x, y in zip(a, b)]
        cosine = min(np.dot(x, y) / (np.linalg.norm(x) * np.linalg.norm(y)) for x, y in zip(a, b))
        l2 = max(np.linalg.norm(x - y) / np.linalg.norm(x) for x, y in zip(a, b))
        assert p["cosine"] == pytest.approx(cosine, rel=0, abs=1e-14)
        assert p["relative_l2"] == pytest.approx(l2, rel=1e-12, abs=1e-300)
        assert p["max_abs_diff"] == p["min_atol"] == max(e.max() for e in d)
        assert p["mean_abs_diff"] == pytest.approx(np.concatenate(d).mean(), rel=1e-12)
        failing = sum(np.count_nonzero(~np.isclose(x, y, rtol=RTOL, atol=ATOL)) for x, y in zip(a, b))
        assert p["failing_elements"] == failing
        # The reported min_rtol passes numpy's own check (in float64) with atol 0 everywhere, and
        # is the plain largest quotient or the double right above it.
        rtol = p["min_rtol"]
        assert all(np.isclose(x, y, rtol=rtol, atol=0).all() for x, y in zip(a, b)), rtol
        ratio = max((e / np.abs(y)).max() for e, y in zip(d, b))
        assert rtol in (ratio, np.nextafter(ratio, np.inf))


def test_rate_intervals_agree_with_scipy(campaign):
    """Every rate's interval is Clopper-Pearson: scipy's exact binomial interval of its counts."""
    def expect(k, n, low, high, what):
        want = scipy_stats.binomtest(k, n).proportion_ci(CONFIDENCE, method="exact")
        assert low == pytest.approx(want.low, abs=1e-12), what
        assert high == pytest.approx(want.high, abs=1e-12), what

    for p in campaign["export"]["pairs"]:
        assert p["images"] == IMAGES
        for rate, count in (("top1_difference_rate", "top1_differences"),
                            ("top5_difference_rate", "top5_differences")):
            assert p[rate] == p[count] / p["images"]
            expect(p[count], p["images"], p[f"{rate}_ci_low"], p[f"{rate}_ci_high"],
                   (p["a"], p["b"], rate))
    for v in campaign["export"]["variants"]:
        if v["labelled_images"] == 0:  # no trials, no interval
            assert v["top1_accuracy_ci_low"] is None and v["top5_accuracy_ci_high"] is None
            continue
        for rate in ("top1_accuracy", "top5_accuracy"):
            k = round(v[rate] * v["labelled_images"])
            expect(k, v["labelled_images"], v[f"{rate}_ci_low"], v[f"{rate}_ci_high"],
                   (v["env"], rate))
