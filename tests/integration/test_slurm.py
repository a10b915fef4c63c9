"""`deltann submit --slurm` on a real Slurm cluster started for this module in a temporary
folder (munged, slurmctld and two slurmd from Debian's slurm-wlm packages, run by hand as root: no
systemd needed). The two slurmd emulate two nodes on this one host: `cpu1` (features
cpu,x86_64,avx2) and `gpu1` (features gpu,h100 and a GRES gpu:h100:1), each with its share of the
host's CPUs, on ports picked free for this module.

- A plan of the demo model (4 photos, ONNX Runtime and OpenCV at one thread, 2 images per shard)
  from a campaign file with a `cpu` hardware group (constraint `cpu`, exclusive) is submitted: the
  job array runs both shards, the merge job waits for it and writes DIR/campaign.db, whose labels
  equal a one-machine run's; --dry-run prints the scripts and submits nothing.
- A `cpu` and a `cuda` group (constraint gpu, gres gpu:h100:1): every shard runs on a node of its
  group's placement (the node Slurm names, SLURMD_NODENAME, recorded in the shard database's meta
  or, for the cuda shard that cannot run without a real GPU, in its failed state record).
- An array task cancelled while its shard runs: status shows it failed with the index to run
  again, a second submit cancels the first submission's merge job (pending for ever) and queues
  only that shard, and the merge then holds the whole campaign.
- A shard database of another plan put into results/: status calls it foreign, submit refuses to
  queue anything, merge refuses it, naming it and both plan hashes, and merge --force keeps the
  database merged before.
- A group whose constraint no node has is refused at submit, naming the group and Slurm's
  reason; the array already queued is cancelled and no merge job is queued
  (docs/SCALE_OUT.md, "Submitting to Slurm").

Skipped with the reason when not root or when the Slurm or MUNGE programs are missing
(scripts/setup installs slurmctld, slurmd, slurm-client and munge).
"""
import json
import os
import shutil
import signal
import socket
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
    """Two nodes on this host, in partition `debug`: `cpu1` and `gpu1` (NODES)."""

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
        out = self.client("squeue", "-h", "-r", "-o", "%i %T").stdout.split("\n")
        return [line for line in out if line.strip() and line.split()[-1] in LIVE_STATES]

    def node_states(self):
        out = self.client("sinfo", "-h", "-N", "-o", "%N %T", check=False).stdout
        return dict(line.split() for line in out.splitlines() if len(line.split()) == 2)

    def describe(self):
        """The queue with each job's reason and the nodes' states, for assertion messages."""
        queue = self.client("squeue", "-h", "-r", "-o", "%i %T %R %N", check=False).stdout
        return f"queue:\n{queue}nodes: {self.node_states()}"

    def wait_until_idle(self, seconds):
        """Until no job is queued or running (a cancelled task takes a moment to end)."""
        deadline = time.monotonic() + seconds
        while self.live_jobs():
            assert time.monotonic() < deadline, self.describe()
            time.sleep(0.3)


# Each node's features and GRES; write_slurm_conf adds its host, slurmd port and CPUs (the host's
# CPUs are split between the nodes: a node configured with more than its slurmd finds is drained).
NODES = {
    "cpu1": "Features=cpu,x86_64,avx2",
    "gpu1": "Features=gpu,h100 Gres=gpu:h100:1",
}


def logs_of(folder):
    return "".join(f"\n{p.name}: {p.read_text()[-1500:]}" for p in sorted(folder.glob("*.log")))


def start_daemon(argv, env, what, folder):
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} did not start: {proc.stderr}{logs_of(folder)}")


def stop_daemons(folder):
    """Every daemon by the pid its pid file names (each slurmd, slurmctld, munged), all at once
    (each takes a second or two to end), waiting until they have ended so that none outlives
    the module, and killing any that will not."""
    pids = []
    for pid_file in sorted(folder.glob("*.pid")):
        try:
            pid = int(pid_file.read_text().split()[0])
            os.kill(pid, signal.SIGTERM)
            pids.append(pid)
        except (OSError, ValueError, IndexError):
            pass
    deadline = time.monotonic() + 10
    while pids and time.monotonic() < deadline:
        time.sleep(0.05)
        pids = [pid for pid in pids if alive(pid)]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def free_ports(count):
    """Ports nothing listens on now, so that this cluster does not meet another one on this host."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def write_slurm_conf(d):
    ctld_port, *node_ports = free_ports(1 + len(NODES))
    cpus = os.cpu_count() or 1
    # gpu1 gets one CPU, cpu1 the rest (with a one-CPU host, each slurmd sees that one CPU).
    shares = {"cpu1": max(1, cpus - 1), "gpu1": 1}
    host = socket.gethostname()
    nodes = "\n".join(
        f"NodeName={name} NodeHostname={host} NodeAddr=127.0.0.1 Port={port} "
        f"CPUs={shares[name]} RealMemory=1000 {features} State=UNKNOWN"
        for (name, features), port in zip(NODES.items(), node_ports, strict=True))
    # A GPU GRES without File= is dropped by slurmd and the node drained: /dev/null stands in.
    d.joinpath("gres.conf").write_text("NodeName=gpu1 Name=gpu Type=h100 File=/dev/null\n")
    d.joinpath("slurm.conf").write_text(f"""\
ClusterName=deltanntest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld_port}
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
GresTypes=gpu
Licenses=rpi4:1
{nodes}
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")


@pytest.fixture(scope="module")
def slurm_cluster():
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
        for node in NODES:
            start_daemon([shutil.which("slurmd", path=SBIN), "-f", str(cluster.conf), "-N", node],
                         env, f"slurmd {node}", d)
        deadline = time.monotonic() + 30
        while (states := cluster.node_states()) != {node: "idle" for node in NODES}:
            if time.monotonic() > deadline:
                pytest.fail(f"the Slurm nodes are not all idle after 30 s: {states}{logs_of(d)}")
            time.sleep(0.2)
        yield cluster
    finally:
        # Whatever failed, the daemons are stopped: the jobs first, so that their processes end
        # before the daemons that watch them; a slurmctld that does not answer is stopped anyway.
        try:
            if (d / "slurmctld.pid").exists() and (d / "slurm.conf").exists():
                for line in cluster.live_jobs():
                    cluster.client("scancel", line.split()[0], check=False)
                cluster.wait_until_idle(15)
        except (AssertionError, subprocess.SubprocessError):
            pass
        stop_daemons(d)
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def slurm(slurm_cluster):
    """The module's cluster, with no job left queued after each test: a failed test's jobs (a
    merge job that waits for ever) must not hold up the next test."""
    yield slurm_cluster
    for line in slurm_cluster.live_jobs():
        slurm_cluster.client("scancel", line.split()[0], check=False)
    slurm_cluster.wait_until_idle(15)


@pytest.fixture(scope="module")
def demo(demo_folder):
    worker_path("ort", "ONNX Runtime's SDK in .deps/onnxruntime, made by scripts/setup")
    return demo_folder


def write_campaign(folder, demo, groups, envs=ENVS, extra=""):
    """A campaign file of the demo model on 4 photos, with the given [[hardware_group]] tables
    (and `extra` top-level keys)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [line.split("#")[0].split() for line in (demo / "images.txt").read_text().splitlines()]
    entries = [f"{demo / path} {label}" for path, label in (e for e in lines if e)][:IMAGES]
    (folder / "images.txt").write_text("\n".join(entries) + "\n")
    listed = ", ".join(f'"{e}"' for e in envs)
    text = (f'model = "{demo / "efficientnet-lite0.onnx"}"\nimages = "images.txt"\n'
            f'db = "single.db"\nenvironments = [{listed}]\nshard_images = 2\n{extra}\n'
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
    r = deltann.run("submit", "--slurm", plan, env=job_env(slurm, tmp_path))
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


def job_env(slurm, tmp_path, workers=None):
    """The environment of `submit`, which sbatch passes on to the jobs: this cluster, the shards'
    node-local folder ($TMPDIR) under the test's folder, and the engines' folder when given."""
    local = tmp_path / "node-local"
    local.mkdir(exist_ok=True)
    env = {**slurm.env, "TMPDIR": str(local)}
    return {**env, "DELTANN_WORKER_DIR": str(workers)} if workers else env


def wait_for(what, predicate, seconds, details=lambda: ""):
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"no {what} after {seconds} s: {details()}"
        time.sleep(0.3)


def last_submission(plan):
    return json.loads((plan / "slurm" / "jobs.json").read_text())["submissions"][-1]


def shard_state(plan, index):
    path = plan / "state" / f"{index:04d}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):  # not written yet, or being replaced
        return {}


def ended(plan, indices):
    return all(shard_state(plan, i).get("state") in {"done", "failed"} for i in indices)


def result_meta(plan, index, key):
    rows = query(plan / "results" / f"shard-{index:04d}.db",
                 "SELECT value FROM meta WHERE key = ?", (key,))
    return rows[0]["value"] if rows else None


def shard_groups(plan):
    manifests = [json.loads(p.read_text()) for p in (plan / "shards").glob("*.json")]
    return {m["shard"]: m["group"] for m in manifests}


CUDA_GROUP = """
[[hardware_group]]
name = "cuda"
match = { devices = ["cuda"] }
constraint = "gpu"
gres = "gpu:h100:1"
shard_images = 4
"""
# TVM plans a CUDA variant on a machine without a GPU (a note says so); its shard then fails on
# a node without one: gpu1's GRES is a stand-in, not a device.
CUDA_ENV = "tvm:opt=0,device=cuda"


def test_each_group_runs_on_the_nodes_of_its_placement(deltann, tmp_path, demo, slurm):
    worker_path("tvm", "TVM's Python environment, made by scripts/setup")
    campaign = write_campaign(tmp_path, demo, CPU_GROUP + CUDA_GROUP, envs=[*ENVS, CUDA_ENV])
    plan = tmp_path / "plan"
    deltann.run("plan", campaign, "--out", plan, timeout=300)
    groups = shard_groups(plan)
    assert groups == {0: "cpu", 1: "cpu", 2: "cuda"}, groups

    r = deltann.run("submit", "--slurm", plan, "--dry-run", env=slurm.env)
    cpu_script, cuda_script = (r.stdout.split(f"# {plan / 'slurm' / name}\n")[1].split("\n\n")[0]
                               for name in ["array-cpu.sh", "array-cuda.sh"])
    for line in ["#SBATCH --array=0-1", "#SBATCH --constraint=cpu", "#SBATCH --exclusive"]:
        assert line in cpu_script, r.describe()
    assert "--gres" not in cpu_script, r.describe()
    for line in ["#SBATCH --array=2", "#SBATCH --constraint=gpu", "#SBATCH --gres=gpu:h100:1"]:
        assert line in cuda_script, r.describe()
    assert "--exclusive" not in cuda_script, r.describe()

    r = deltann.run("submit", "--slurm", plan, env=job_env(slurm, tmp_path))
    arrays = {a["group"]: a for a in last_submission(plan)["arrays"]}
    assert {g: a["shards"] for g, a in arrays.items()} == {"cpu": "0-1", "cuda": "2"}, r.describe()
    wait_for("end of every shard", lambda: ended(plan, groups), 120,
             lambda: deltann.run("status", plan, expect_rc=None).stdout + slurm.describe())

    # Where each shard ran, as Slurm names the node: every shard of a group on its placement's
    # node, all the shard's variants in the one database (one process, one node).
    for index, group in groups.items():
        node = json.loads(result_meta(plan, index, "node")) if group == "cpu" else \
            shard_state(plan, index)["node"]
        job = node.get("job", {})
        assert job.get("SLURMD_NODENAME") == {"cpu": "cpu1", "cuda": "gpu1"}[group], (index, node)
        assert job.get("SLURM_ARRAY_JOB_ID") == str(arrays[group]["job_id"]), (index, node)
        assert job.get("SLURM_ARRAY_TASK_ID") == str(index), (index, node)
    for index in [0, 1]:
        assert shard_state(plan, index)["state"] == "done", shard_state(plan, index)
        db = plan / "results" / f"shard-{index:04d}.db"
        variants = query(db, "SELECT env, status FROM variants ORDER BY id")
        assert [v["status"] for v in variants] == ["done", "done"], variants
        assert len(query(db, "SELECT variant_id FROM results")) == 2 * len(ENVS)

    # gpu1's GRES is a stand-in: without a real GPU (and TVM built for CUDA) the cuda shard
    # cannot run there, and says so rather than publishing an empty result.
    cuda = shard_state(plan, 2)
    if cuda["state"] == "done":  # a host with a real GPU: then the merge job runs too
        wait_for("merged database", lambda: (plan / "campaign.db").exists(), 60, slurm.describe)
        return
    assert cuda["state"] == "failed", cuda
    assert "none of the shard's 1 variants can run on this node" in cuda["error"], cuda
    assert "hardware group cuda" in cuda["error"], cuda
    assert not (plan / "results" / "shard-0002.db").exists()
    r = deltann.run("status", plan, expect_rc=3)
    assert "shard 2 [cuda] failed: on " in r.stdout and "to run again: --array=2" in r.stdout, \
        r.describe()

    # The merge job waits for every array to end well, so it never runs; cancel it.
    merge = str(last_submission(plan)["merge"]["job_id"])
    assert any(line.split()[0] == merge for line in slurm.live_jobs()), slurm.describe()
    slurm.client("scancel", merge)
    slurm.wait_until_idle(15)
    assert not (plan / "campaign.db").exists()


def test_a_cancelled_shard_is_submitted_again_alone(deltann, tmp_path, demo, slurm,
                                                    test_workers):
    # The test engine's second variant hangs on each shard's second image until the campaign's
    # timeout (5 s, ample for the other inferences on a loaded machine) kills its worker: each
    # shard runs for seconds, long enough to cancel it.
    envs = ["testing:threads=1", "testing:fault=hang,at=run,after=2"]
    campaign = write_campaign(tmp_path, demo, "", envs=envs, extra="timeout = 5")
    env = job_env(slurm, tmp_path, test_workers)
    plan = tmp_path / "plan"
    deltann.run("plan", campaign, "--out", plan, env=env, timeout=300)
    deltann.run("submit", "--slurm", plan, env=env)
    first = last_submission(plan)
    array = first["arrays"][0]["job_id"]
    wait_for("start of shard 1", lambda: shard_state(plan, 1).get("state") == "started", 60,
             slurm.describe)
    slurm.client("scancel", f"{array}_1")
    wait_for("end of the array", lambda: ended(plan, [0]) and not any(
        line.startswith(f"{array}_") for line in slurm.live_jobs()), 60, slurm.describe)

    r = deltann.run("status", plan, expect_rc=3)
    assert "shard 0 [cpu] done" in r.stdout, r.describe()
    assert "shard 1 [cpu] failed" in r.stdout and "gone without a result" in r.stdout, r.describe()
    assert "1 done, 0 started, 1 failed, 0 missing" in r.stdout, r.describe()
    assert "to run again: --array=1 " in r.stdout, r.describe()
    assert not (plan / "results" / "shard-0001.db").exists()
    # A kill that lands while the shard creates its node-local database leaves it empty (SQLite
    # creates the file before writing into it): the next try on this node must not be stopped by
    # it. That moment is too short to aim the cancel at, so the leftover is put in that state.
    plan_hash = json.loads((plan / "plan.json").read_text())["plan_hash"]
    leftover = Path(env["TMPDIR"]) / f"deltann-{plan_hash[:12]}-shard-0001.db"
    assert leftover.exists(), sorted(Path(env["TMPDIR"]).iterdir())
    for suffix in ["-wal", "-shm", "-journal"]:
        Path(f"{leftover}{suffix}").unlink(missing_ok=True)
    leftover.write_bytes(b"")
    # Its array did not end well, so its merge job would wait for ever: the next submission
    # cancels it, and queues a merge job of its own.
    stale = first["merge"]["job_id"]
    assert any(line.split()[0] == stale for line in slurm.live_jobs()), slurm.describe()

    r = deltann.run("submit", "--slurm", plan, env=env)
    assert "hardware group cpu, shards 1 (" in r.stdout, r.describe()
    assert f"cancelled job {stale}: the merge job of an earlier submission" in r.stdout, \
        r.describe()
    assert not any(line.split()[0] == stale for line in slurm.live_jobs()), slurm.describe()
    second = last_submission(plan)
    assert [a["shards"] for a in second["arrays"]] == ["1"], second
    merged = plan / "campaign.db"
    wait_for("merged database", lambda: merged.exists() and not slurm.live_jobs(), 90,
             lambda: deltann.run("status", plan, expect_rc=None).stdout + slurm.describe())
    log = plan / "slurm" / "logs" / f"merge_{second['merge']['job_id']}.out"
    assert "merged 2 of 2 shards" in log.read_text()

    # The whole campaign: every image of the first variant, and the second's hang on each
    # shard's second image recorded once, even though shard 1 was killed during a first try.
    by_env = {}
    for (env_name, _key) in labels(merged):
        by_env[env_name] = by_env.get(env_name, 0) + 1
    assert sorted(by_env.values()) == [IMAGES - 2, IMAGES], by_env
    failures = query(merged, "SELECT stage, symptom FROM failures")
    assert [(f["stage"], f["symptom"]) for f in failures] == [("run", "hang")] * 2, \
        [tuple(f) for f in failures]
    rerun = json.loads(query(merged, "SELECT value FROM meta WHERE key = 'shard:1'")[0]["value"])
    assert rerun["node"]["job"]["SLURM_ARRAY_JOB_ID"] == str(second["arrays"][0]["job_id"])


def test_merge_refuses_a_shard_of_another_plan(deltann, tmp_path, demo, slurm, test_workers):
    env = job_env(slurm, tmp_path, test_workers)
    plans = {}
    for name, variant in [("a", "testing:threads=1"), ("b", "testing:threads=2")]:
        campaign = write_campaign(tmp_path / name, demo, "", envs=[variant])
        plans[name] = tmp_path / name / "plan"
        deltann.run("plan", campaign, "--out", plans[name], env=env, timeout=300)
    a, b = plans["a"], plans["b"]
    hash_a, hash_b = (json.loads((p / "plan.json").read_text())["plan_hash"] for p in [a, b])
    assert hash_a != hash_b

    deltann.run("submit", "--slurm", a, env=env)
    merged = a / "campaign.db"
    wait_for("merged database", lambda: merged.exists() and not slurm.live_jobs(), 60,
             lambda: deltann.run("status", a, expect_rc=None).stdout + slurm.describe())
    before = merged.read_bytes()
    deltann.run("run", "--plan", b, "--shard", 0, "--quiet", env=env)
    foreign = a / "results" / "shard-0000.db"
    shutil.copy(b / "results" / "shard-0000.db", foreign)

    refusal = f"{foreign} belongs to another plan (plan_hash {hash_b}, this plan {hash_a})"
    r = deltann.run("merge", a, "-o", tmp_path / "merged.db", expect_rc=1)
    assert refusal in r.stderr, r.describe()
    assert not (tmp_path / "merged.db").exists()
    # Status calls it foreign, not done; submit queues nothing for it; the merge job's merge
    # (--force over the database merged before) refuses it too, and keeps that one.
    r = deltann.run("status", a, env=env, expect_rc=3)
    assert f"foreign: {refusal}" in r.stdout, r.describe()
    r = deltann.run("submit", "--slurm", a, env=env, expect_rc=1)
    assert "nothing was submitted" in r.stderr and refusal in r.stderr, r.describe()
    assert len(json.loads((a / "slurm" / "jobs.json").read_text())["submissions"]) == 1
    r = deltann.run("merge", a, "-o", merged, "--force", expect_rc=1)
    assert refusal in r.stderr, r.describe()
    assert merged.read_bytes() == before
    r = deltann.run("run", "--plan", a, "--shard", 0, env=env, expect_rc=1)
    assert f"{foreign} holds the result of another plan (plan_hash {hash_b})" in r.stderr, \
        r.describe()
