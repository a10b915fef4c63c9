"""`deltann submit --slurm` on a real Slurm cluster of one node, started for this module in a
temporary folder (munged, slurmctld and slurmd from Debian's slurm-wlm packages, run by hand as
root: no systemd needed).

A plan of the demo model (4 photos, ONNX Runtime and OpenCV at one thread, 2 images per shard)
from a campaign file with a `cpu` hardware group (constraint `cpu`, exclusive) is submitted: the
job array runs both shards, the merge job waits for it and writes DIR/campaign.db, whose labels
equal a one-machine run's. A group whose constraint no node has is refused at submit, naming the
group and Slurm's reason, the array already queued is cancelled and no merge job is queued; and
--dry-run prints the scripts and submits nothing (docs/SCALE_OUT.md, "Submitting to Slurm").

Skipped with the reason when not root or when the Slurm or MUNGE programs are missing
(scripts/setup installs slurmctld, slurmd, slurm-client and munge).
"""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from deltann_testlib import query, worker_path

ENVS = ["ort:opt=all,threads=1", "opencv:opt=on,threads=1"]
IMAGES = 4
SBIN = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
PROGRAMS = ["munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo"]
LIVE_STATES = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED"}


class SlurmCluster:
    """One node, `localhost`, features cpu,x86_64,avx2, in partition `debug`."""

    def __init__(self, folder):
        self.dir = folder
        self.conf = folder / "slurm.conf"
        self.env = {"SLURM_CONF": str(self.conf)}

    def client(self, *args, check=True):
        return subprocess.run([shutil.which(args[0], path=SBIN), *map(str, args[1:])],
                              env={**os.environ, **self.env}, capture_output=True, text=True,
                              timeout=30, check=check)

    def live_jobs(self):
        """The jobs still queued or running (finished ones linger in squeue for a while)."""
        out = self.client("squeue", "-h", "-o", "%i %T").stdout.split("\n")
        return [line for line in out if line.strip() and line.split()[-1] in LIVE_STATES]


def start_daemon(argv, env, what, folder):
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        logs = "".join(f"\n{p.name}: {p.read_text()[-1500:]}" for p in folder.glob("*.log"))
        raise RuntimeError(f"{what} did not start: {proc.stderr}{logs}")


def stop_daemons(folder):
    """Each daemon by the pid its pid file names: slurmd, slurmctld, then munged."""
    for name in ["slurmd-localhost.pid", "slurmctld.pid", "munged.pid"]:
        pid_file = folder / name
        try:
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)
        except (OSError, ValueError, IndexError):
            pass
    time.sleep(0.5)


def write_slurm_conf(d):
    node = (f"NodeName=localhost NodeAddr=127.0.0.1 CPUs={os.cpu_count() or 1} RealMemory=1000 "
            "Features=cpu,x86_64,avx2 State=UNKNOWN")
    d.joinpath("slurm.conf").write_text(f"""\
ClusterName=deltanntest
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={d}/munge/munge.socket
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool/%n
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd-%n.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
SchedulerParameters=sched_interval=1
Licenses=rpi4:1
{node}
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")


@pytest.fixture(scope="module")
def slurm():
    if os.geteuid() != 0:
        pytest.skip("starting Slurm's daemons by hand needs root")
    missing = [p for p in PROGRAMS if not shutil.which(p, path=SBIN)]
    if missing:
        pytest.skip(f"no {', '.join(missing)} here (apt-get install slurmctld slurmd "
                    "slurm-client munge; scripts/setup does)")
    # Not under pytest's own temporary folder: munged refuses a socket whose parent folders
    # others cannot search, and pytest's folder is private to its user.
    d = Path(tempfile.mkdtemp(prefix="deltann-slurm-", dir="/tmp"))
    cluster = SlurmCluster(d)
    try:
        for sub in ["munge", "state", "spool"]:
            (d / sub).mkdir()
        os.chmod(d, 0o755)
        os.chmod(d / "munge", 0o755)
        key = d / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        env = {**os.environ, **cluster.env}
        start_daemon([shutil.which("munged", path=SBIN), f"--key-file={key}",
                      f"--socket={d}/munge/munge.socket", f"--pid-file={d}/munged.pid",
                      f"--log-file={d}/munged.log", f"--seed-file={d}/munge/munge.seed"],
                     env, "munged", d)
        write_slurm_conf(d)
        start_daemon([shutil.which("slurmctld", path=SBIN), "-f", str(cluster.conf)], env,
                     "slurmctld", d)
        start_daemon([shutil.which("slurmd", path=SBIN), "-f", str(cluster.conf), "-N",
                      "localhost"], env, "slurmd", d)
        deadline = time.monotonic() + 30
        while "idle" not in cluster.client("sinfo", "-h", "-o", "%T", check=False).stdout:
            if time.monotonic() > deadline:
                logs = "".join(f"\n{p.name}: {p.read_text()[-1500:]}" for p in d.glob("*.log"))
                pytest.fail(f"the Slurm node did not become idle in 30 s{logs}")
            time.sleep(0.2)
        yield cluster
    finally:
        if (d / "slurmctld.pid").exists():
            for line in cluster.live_jobs() if (d / "slurm.conf").exists() else []:
                cluster.client("scancel", line.split()[0], check=False)
        stop_daemons(d)
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def demo():
    folder = Path(os.environ.get("DELTANN_DEMO_DIR") or "assets/demo").resolve()
    if not (folder / "efficientnet-lite0.onnx").is_file():
        pytest.skip(f"no demo model in {folder} (set DELTANN_DEMO_DIR; scripts/setup makes it)")
    worker_path("ort", "ONNX Runtime's SDK in .deps/onnxruntime, made by scripts/setup")
    return folder


def write_campaign(folder, demo, groups):
    """A campaign file of the demo model on 4 photos, with the given [[hardware_group]] tables."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [line.split("#")[0].split() for line in (demo / "images.txt").read_text().splitlines()]
    entries = [f"{demo / path} {label}" for path, label in (e for e in lines if e)][:IMAGES]
    (folder / "images.txt").write_text("\n".join(entries) + "\n")
    envs = ", ".join(f'"{e}"' for e in ENVS)
    text = (f'model = "{demo / "efficientnet-lite0.onnx"}"\nimages = "images.txt"\n'
            f'db = "single.db"\nenvironments = [{envs}]\nshard_images = 2\n\n'
            "[timing]\nwarmup = 0\nrepeat = 1\ntiming_images = 2\n\n" + groups)
    path = folder / "campaign.toml"
    path.write_text(text)
    return path


CPU_GROUP = """[[hardware_group]]
name = "cpu"
match = { devices = ["cpu"] }
constraint = "cpu"
exclusive = true
"""


def labels(db):
    rows = query(db, "SELECT v.env, i.key, r.top_ids FROM results r JOIN variants v "
                     "ON v.id = r.variant_id JOIN images i ON i.id = r.image_id")
    return {(r["env"], r["key"]): r["top_ids"] for r in rows}


def test_submit_runs_the_plan_and_merges(deltann, tmp_path, demo, slurm):
    campaign = write_campaign(tmp_path, demo, CPU_GROUP)
    plan = tmp_path / "plan"
    deltann.run("plan", campaign, "--out", plan, timeout=300)
    groups = json.loads((plan / "groups.json").read_text())
    assert groups == [{"name": "cpu", "constraint": "cpu", "gres": "", "licenses": "",
                       "exclusive": True, "shard_images": 2}]
    assert "groups.json" in json.loads((plan / "plan.json").read_text())["files"]

    # --dry-run: the scripts and the commands, nothing queued or written.
    r = deltann.run("submit", "--slurm", plan, "--dry-run", "--time", "10", env=slurm.env)
    for line in ["#SBATCH --array=0-1", "#SBATCH --constraint=cpu", "#SBATCH --exclusive",
                 "#SBATCH --time=10", f"run --plan '{plan}'", f"merge '{plan}' -o",
                 "sbatch --parsable --dependency=afterok:"]:
        assert line in r.stdout, r.describe()
    assert not slurm.live_jobs() and not (plan / "slurm").exists()

    started = time.monotonic()
    r = deltann.run("submit", "--slurm", plan, env=slurm.env)
    assert "hardware group cpu, shards 0-1" in r.stdout, r.describe()
    jobs = json.loads((plan / "slurm" / "jobs.json").read_text())["submissions"][-1]
    assert [a["group"] for a in jobs["arrays"]] == ["cpu"] and jobs["merge"]["job_id"]
    script = (plan / "slurm" / "array-cpu.sh").read_text()
    assert "#SBATCH --constraint=cpu" in script and "#SBATCH --exclusive" in script

    while True:
        status = deltann.run("status", plan, expect_rc=None)
        if status.returncode == 0:
            break
        assert "] failed" not in status.stdout, status.describe()
        assert time.monotonic() - started < 120, status.describe()
        time.sleep(1)
    assert f"slurm job {jobs['merge']['job_id']}: merge" in status.stdout, status.describe()
    merged = plan / "campaign.db"
    while slurm.live_jobs() or not merged.exists():
        assert time.monotonic() - started < 150, (slurm.live_jobs(), status.describe())
        time.sleep(0.5)
    logs = sorted((plan / "slurm" / "logs").iterdir())
    assert len(logs) == 3, logs  # two array tasks and the merge job
    assert "merged 2 of 2 shards" in (plan / "slurm" / "logs").joinpath(
        f"merge_{jobs['merge']['job_id']}.out").read_text()

    compared = json.loads(deltann.run("compare", "--db", merged, "--json").stdout)
    assert compared["meta"]["plan_hash"]
    single = tmp_path / "single.db"
    deltann.run("run", campaign, "--quiet", timeout=300)
    assert labels(merged) == labels(single)
    assert len(labels(merged)) == len(ENVS) * IMAGES


def test_a_placement_no_node_satisfies_is_refused(deltann, tmp_path, demo, slurm):
    # Two groups, submitted in name order: `a-ort` (on the node's feature) is queued, then
    # `b-opencv` is refused, so the array already queued must be cancelled.
    groups = """[[hardware_group]]
name = "a-ort"
match = { engines = ["ort"] }
constraint = "cpu"

[[hardware_group]]
name = "b-opencv"
match = { engines = ["opencv"] }
constraint = "nosuchfeature"
"""
    campaign = write_campaign(tmp_path, demo, groups)
    plan = tmp_path / "plan"
    deltann.run("plan", campaign, "--out", plan, timeout=300)
    r = deltann.run("submit", "--slurm", plan, env=slurm.env, expect_rc=1)
    assert "hardware group 'b-opencv'" in r.stderr, r.describe()
    assert "Invalid feature specification" in r.stderr, r.describe()
    assert "cancelled the jobs already submitted" in r.stderr, r.describe()
    assert "no merge job was submitted" in r.stderr, r.describe()
    assert not slurm.live_jobs(), slurm.live_jobs()
    assert not (plan / "slurm" / "jobs.json").exists()
