"""MetaSchedule tuning for deltann's TVM builds (the `tune=N` knob; docs/TVM.md, "Tuning").

TVM's default schedules are what an untuned `tvm.compile` gives; production use of TVM tunes
them. This module searches schedules for every fused kernel of a Relax module with N measured
trials in all and returns the pipeline that compiles the module with the best ones found.

Candidates are built and measured in this process, one after the other. TVM's own LocalBuilder
and LocalRunner ship each candidate to a pool of Python worker processes, which needs extra
packages (cloudpickle, psutil) and measures a kernel in a process that competes with the builds
of the next ones; here one process does both in turn, so a measurement has the machine to itself
(a candidate that crashes the process fails the build, which deltann records as a compile
failure with its reason).
"""
import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

# The XGBoost cost model ranks candidates before any is measured; without it (the package is
# missing) the search draws them at random, which needs many more trials for the same result.
COST_MODEL = "xgb"


def gpu_present() -> bool:
    """Whether nvidia-smi lists a GPU: tuning for CUDA measures every candidate on one."""
    import shutil
    import subprocess
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def _builder_and_runner() -> tuple[Any, Any]:
    """A MetaSchedule builder and runner that work in this process (see the module's doc)."""
    from tvm.ir.utils import derived_object
    from tvm.runtime import device, load_module
    from tvm.s_tir.meta_schedule.builder import BuilderResult, PyBuilder
    from tvm.s_tir.meta_schedule.builder.local_builder import default_build, default_export
    from tvm.s_tir.meta_schedule.runner import EvaluatorConfig, PyRunner
    from tvm.s_tir.meta_schedule.runner.local_runner import (
        LocalRunnerFuture,
        default_alloc_argument,
        default_run_evaluator,
    )

    @derived_object
    class InProcessBuilder(PyBuilder):
        def build(self, build_inputs: list[Any]) -> list[Any]:
            results = []
            for item in build_inputs:
                try:
                    built = default_build(item.mod, item.target, None)
                    results.append(BuilderResult(default_export(built), None))
                except Exception as e:  # noqa: BLE001  (a candidate TVM cannot build: skipped)
                    results.append(BuilderResult(None, f"{type(e).__name__}: {e}"))
            return results

    @derived_object
    class InProcessRunner(PyRunner):
        # Three runs of at least 20 ms per measurement: enough to rank kernels of
        # microseconds to milliseconds without spending the budget on measuring.
        config = EvaluatorConfig(number=3, repeat=1, min_repeat_ms=20,
                                 enable_cpu_cache_flush=False)

        def run(self, runner_inputs: list[Any]) -> list[Any]:
            futures = []
            for item in runner_inputs:
                try:
                    module = load_module(str(item.artifact_path))
                    dev = device(str(item.device_type), 0)
                    args = default_alloc_argument(
                        dev, tuple(info.as_json() for info in item.args_info), 1)
                    costs = default_run_evaluator(module, dev, self.config, args)
                    futures.append(LocalRunnerFuture(res=costs))
                except Exception as e:  # noqa: BLE001  (a candidate that fails to run: skipped)
                    futures.append(LocalRunnerFuture(res=None,
                                                     error_message=f"{type(e).__name__}: {e}"))
                finally:
                    _remove_artifact(str(item.artifact_path))
            return futures

    return InProcessBuilder(), InProcessRunner()


def _remove_artifact(path: str) -> None:
    """A measured candidate's library (default_export writes each into its own temp folder)."""
    try:
        os.unlink(path)
        os.rmdir(os.path.dirname(path))
    except OSError:
        pass


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Sends file descriptor 1 to 2 for a while: TVM's native code writes to it directly."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def cost_model() -> str:
    try:
        import xgboost  # noqa: F401
    except ImportError:
        return "random"
    return COST_MODEL


def tune(mod: Any, target: Any, trials: int, trials_per_round: int, seed: int) -> tuple[Any, dict]:
    """Searches schedules for `mod`'s kernels with `trials` measured candidates in all.

    Returns the MetaSchedule database with the best schedule per kernel and a report of the
    search (tasks, trials measured, cost model). `mod` is the output of fused(), made in the
    build's PassContext, so that the kernels it tunes are those the build will compile.
    """
    from tvm.s_tir import meta_schedule as ms

    builder, runner = _builder_and_runner()
    model = cost_model()
    # MetaSchedule prints its progress tables on stdout, where the build's one JSON line goes.
    with tempfile.TemporaryDirectory(prefix="deltann-tune-") as work_dir, _stdout_to_stderr():
        tasks = ms.relax_integration.extract_tasks(mod, target)
        database = ms.relax_integration.tune_relax(
            mod=mod, params={}, target=target, work_dir=work_dir, max_trials_global=trials,
            num_trials_per_iter=min(trials_per_round, trials), builder=builder, runner=runner,
            database="memory", cost_model=model, seed=seed)
    return database, {"tasks": len(tasks), "trials": trials,
                      "measured": len(database.get_all_tuning_records()), "cost_model": model}


def fused(tvm: Any, relax: Any, target: Any, mod: Any) -> Any:
    """`mod` with every operator legalised to TIR and fused into kernels, as the target pipeline
    does it: MetaSchedule tunes the TIR kernels a module holds, so it must see them fused."""
    if "gpu" in target.keys:
        from tvm.relax.backend.cuda import pipeline as stages
    else:
        from tvm.relax.backend.cpu_generic import pipeline as stages

    with target:
        return tvm.transform.Sequential([
            *stages.library_dispatch_passes(target), relax.transform.LegalizeOps(),
            relax.transform.AnnotateTIROpPattern(), relax.transform.FoldConstant(),
            relax.transform.FuseOps(), relax.transform.FuseTIR()])(mod)


def tuned_pipeline(tvm: Any, relax: Any, target: Any, cuda: bool) -> Any:
    """The rest of the target pipeline for a module made by fused(), with the tuned schedules.

    MetaScheduleApplyDatabase replaces each kernel the search reached by its best schedule
    (the database must be in scope); then the target pipeline's lowering and finalising passes.
    On CUDA, kernels the search did not reach get DLight's default schedules, as untuned CUDA
    builds do.
    """
    if cuda:
        from tvm.relax.backend.cuda import pipeline as stages
    else:
        from tvm.relax.backend.cpu_generic import pipeline as stages

    @tvm.transform.module_pass(opt_level=0)
    def _pipeline(mod: Any, _ctx: Any) -> Any:
        passes = [relax.transform.MetaScheduleApplyDatabase()]
        if cuda:
            from tvm.s_tir import dlight as dl
            passes.append(dl.ApplyDefaultSchedule(dl.gpu.GEMV(), dl.gpu.Reduction(),
                                                  dl.gpu.GeneralReduction(), dl.gpu.Fallback()))
        passes += stages.dataflow_lower_passes(target) + stages.finalize_passes(target)
        with target:
            return tvm.transform.Sequential(passes)(mod)

    return _pipeline
