"""bench/campaign_overhead still runs and its breakdown adds up (3 photos, one engine): the
benchmark itself is run by hand (docs/PERFORMANCE.md, "Campaign overhead")."""
import json
import subprocess
import sys

import pytest

from deltann_testlib import env_path


def test_smoke_run_accounts_for_the_whole_wall_time(tmp_path):
    build = env_path("DELTANN_BUILD_DIR", "the build folder")
    source = env_path("DELTANN_SOURCE_DIR", "the deltann source tree")
    demo = env_path("DELTANN_DEMO_DIR", "the demo model and photos")
    if not (build / "deltann-worker-ort").exists():
        pytest.skip(f"{build} has no deltann-worker-ort")
    out = tmp_path / "overhead.json"
    ran = subprocess.run([sys.executable, source / "bench" / "campaign_overhead.py",
                          "--build", build, "--demo", demo, "--smoke", "--out", out],
                         capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "outside inference" in ran.stdout, ran.stdout
    (campaign,) = json.loads(out.read_text())["campaigns"]
    assert campaign["images"] == 3 and campaign["results"] == 3, campaign
    assert campaign["variants_run"] == ["ort:opt=all,device=cpu,threads=1"], campaign
    assert campaign["worker_starts"] == 1, campaign
    assert 0 < campaign["inference_s"] < campaign["wall_s"], campaign
    # Every phase was placed; what is left over is rounding of the timestamps, not a lost phase.
    assert abs(campaign["unaccounted_s"]) < 0.01, campaign
    assert all(seconds >= -0.01 for seconds in campaign["phases_s"].values()), campaign
    assert campaign["own_peak_rss_mib"] > 0 and campaign["tree_peak_rss_mib"] > 0, campaign
