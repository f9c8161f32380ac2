"""torch, CUDA and NVML: the build against the driver and each GPU, bf16 where the config asks for it, and
what ``train.compile`` needs (a C++ compiler for Inductor on a CPU, Triton on a GPU).

The facts are gathered from the real torch and NVML (``gather``) and judged apart (``verdicts``), so each
failure a GPU machine can have is judged by the same code on a machine without one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trm_core.config import Config
from trm_core.telemetry.host_stats import cores, others_busy
from trm_core.doctor.report import Check, fail, ok, warn

AREA = "torch"


@dataclass
class GpuFacts:
    index: int
    name: str
    capability: tuple[int, int]
    total_mb: float
    free_mb: float
    bf16: bool


@dataclass
class PlatformFacts:
    torch_version: str
    cuda_build: str | None            # torch.version.cuda: None for a CPU build
    cuda_available: bool
    arch_list: list[str] = field(default_factory=list)  # the GPU architectures the build has kernels for
    gpus: list[GpuFacts] = field(default_factory=list)
    nvml_reason: str = ""             # why NVML cannot be read ("" when it can)
    nvml_gpus: int = 0
    driver: str | None = None
    compiler: str | None = None       # the C++ compiler Inductor would use; None when not looked for or none
    compiler_problem: str = ""        # why none works ("" when one does or it was not looked for)
    triton: bool | None = None        # Triton importable (Inductor's GPU kernels); None when not looked for
    cores: int = 0                    # the cores this process may use, and how many of them others keep busy
    others_busy: float = 0.0
    threads: int = 0                  # torch's default threads


def gather(compile_tools: bool = False) -> PlatformFacts:
    """The facts; ``compile_tools`` also asks Inductor for its C++ compiler and Triton (seconds: it imports
    Inductor)."""
    import torch

    facts = PlatformFacts(torch.__version__, torch.version.cuda, torch.cuda.is_available())
    facts.cores, facts.others_busy, facts.threads = cores(), others_busy(), torch.get_num_threads()
    if compile_tools:
        _gather_compile_tools(facts)
    if facts.cuda_available:
        facts.arch_list = list(torch.cuda.get_arch_list())
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            free, total = torch.cuda.mem_get_info(i)
            with torch.cuda.device(i):
                bf16 = torch.cuda.is_bf16_supported()
            facts.gpus.append(GpuFacts(i, props.name, (props.major, props.minor), total / 2**20, free / 2**20, bf16))
    from trm_core.telemetry.gpu import GpuProbe

    probe = GpuProbe()
    status = probe.sample()
    facts.nvml_reason, facts.nvml_gpus = status.reason, len(status.gpus)
    if status.available and probe._nvml is not None:
        try:
            driver = probe._nvml.nvmlSystemGetDriverVersion()
            facts.driver = driver.decode() if isinstance(driver, bytes) else str(driver)
        except Exception:  # noqa: BLE001 - the version is a nicety
            facts.driver = None
    probe.close()
    return facts


def _gather_compile_tools(facts: PlatformFacts) -> None:
    """What torch.compile will use, found the way Inductor finds it (it honours CXX and its own config)."""
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler
        facts.compiler = str(get_cpp_compiler())
    except Exception as exc:  # noqa: BLE001 - Inductor's own reason is the detail
        facts.compiler_problem = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:200]}"
    try:
        from torch.utils._triton import has_triton
        facts.triton = bool(has_triton())
    except Exception:  # noqa: BLE001 - an old or odd build: no Triton to speak of
        facts.triton = False


def supports(arch_list: list[str], capability: tuple[int, int]) -> bool:
    """A build runs on a GPU it has kernels for (sm_XY), or PTX (compute_XY) at or below the GPU's level."""
    major, minor = capability
    if f"sm_{major}{minor}" in arch_list:
        return True
    level = major * 10 + minor
    return any(a.startswith("compute_") and a[8:].isdigit() and int(a[8:]) <= level for a in arch_list)


def wants_gpu(cfg: Config) -> bool:
    return cfg.train.device.startswith("cuda")


def verdicts(facts: PlatformFacts, cfg: Config) -> list[Check]:
    """The gathered facts judged against the config: torch, the device, each GPU, bf16, NVML, compile."""
    build = f"CUDA {facts.cuda_build} build" if facts.cuda_build else "CPU build"
    on_gpu = facts.cuda_available and cfg.train.device != "cpu"
    found = [ok(AREA, "torch", f"torch {facts.torch_version} ({build})"), _device_verdict(facts, cfg)]
    found += [_gpu_verdict(facts, gpu) for gpu in facts.gpus]
    found += [c for c in (_bf16_verdict(facts, cfg, on_gpu), _nvml_verdict(facts, on_gpu)) if c is not None]
    if not on_gpu:
        found.append(_load_verdict(facts, cfg))
    if cfg.train.compile != "off":
        found.append(_compile_verdict(facts, cfg, on_gpu))
    return found


def _device_verdict(facts: PlatformFacts, cfg: Config) -> Check:
    """Whether torch can use the device the run asks for, and a GPU NVML sees."""
    gpu_seen = facts.nvml_gpus > 0
    if wants_gpu(cfg) and not facts.cuda_available:
        why = ("torch is a CPU build" if not facts.cuda_build else
               "the driver does not serve this build's CUDA " + str(facts.cuda_build) if gpu_seen else
               "no NVIDIA GPU here")
        return fail(AREA, "device", f"train.device = {cfg.train.device!r} but torch sees no GPU: {why}",
                    "install the torch build for this machine's driver (pip index of pytorch.org, cuXYZ), "
                    "or set train.device = 'cpu'")
    if gpu_seen and not facts.cuda_available:
        why = "torch is a CPU build" if not facts.cuda_build else \
            f"torch's CUDA {facts.cuda_build} does not run with driver {facts.driver or '(unknown)'}"
        return warn(AREA, "device", f"NVML sees {facts.nvml_gpus} GPU(s) but torch cannot use them: {why}; "
                    "training would run on the CPU", "install the torch build that matches the driver "
                    "(nvidia-smi's 'CUDA Version' is the newest the driver serves)")
    if facts.cuda_available:
        return ok(AREA, "device", f"{len(facts.gpus)} GPU(s) usable by torch" +
                  (f", driver {facts.driver}" if facts.driver else ""))
    return ok(AREA, "device", "no GPU: the run trains on the CPU")


def _load_verdict(facts: PlatformFacts, cfg: Config) -> Check:
    """A CPU run beside other busy processes: torch's default threads collapse (13-20 samples/s where one thread
    gave 444 on a busy 2-core machine)."""
    busy, n = facts.others_busy, facts.cores
    if busy < 0.5:
        return ok(AREA, "load", f"the {n} cores are free (other processes use {busy:.1f})")
    threads = cfg.train.threads or facts.threads
    return warn(AREA, "load", f"other processes keep {busy:.1f} of {n} cores busy: a run on {threads} thread"
                f"{'s' if threads > 1 else ''} competes with them and can slow to a fraction of its speed",
                "leave train.threads = 0 (a fresh start takes the free cores), or run trm-tui autotune (a in the "
                "dashboard) once the run is going; the run warns when its speed collapses")


def _gpu_verdict(facts: PlatformFacts, gpu: GpuFacts) -> Check:
    """Whether this torch build has kernels for the GPU's architecture."""
    cc = f"sm_{gpu.capability[0]}{gpu.capability[1]}"
    if supports(facts.arch_list, gpu.capability):
        return ok(AREA, f"gpu {gpu.index}", f"{gpu.name} ({cc}) is supported by this build")
    return fail(AREA, f"gpu {gpu.index}", f"{gpu.name} is {cc}; this torch build has kernels for "
                f"{', '.join(facts.arch_list) or 'no GPU'}", "install a torch build that lists "
                f"{cc} (a newer CUDA build for a new GPU, an older one for an old GPU)")


def _bf16_verdict(facts: PlatformFacts, cfg: Config, on_gpu: bool) -> Check | None:
    """bf16 asked for where it is missing (an old GPU: an error; a CPU: slow); None when the run uses fp32."""
    precision = cfg.train.precision
    if precision == "bf16" and not on_gpu:
        return warn(AREA, "bf16", "train.precision = 'bf16' on a CPU runs, slowly (no bf16 matrix units)",
                    "set train.precision = 'fp32' on a CPU")
    if precision not in ("bf16", "autocast") or not on_gpu:
        return None
    lacking = [g for g in facts.gpus if not g.bf16]
    if lacking and precision == "bf16":
        return fail(AREA, "bf16", f"train.precision = 'bf16' but {lacking[0].name} has no bf16 "
                    "(compute capability 8.0 or newer)", "set train.precision = 'fp32'")
    if lacking:
        return warn(AREA, "bf16", f"{lacking[0].name} has no bf16: autocast falls back to fp16 rules "
                    "or fp32", "set train.precision = 'fp32' to say so")
    return ok(AREA, "bf16", f"train.precision = {precision!r}: every GPU supports bf16")


def _nvml_verdict(facts: PlatformFacts, on_gpu: bool) -> Check | None:
    """Whether the dashboard will see the GPUs (NVML); None on a machine without one."""
    if on_gpu and facts.nvml_reason:
        return warn(AREA, "nvml", f"NVML is not readable ({facts.nvml_reason}): the dashboard shows no GPU "
                    "use, memory or temperature", "pip install nvidia-ml-py (and check the driver's "
                    "libnvidia-ml.so is on the library path)")
    if facts.nvml_gpus > 0:
        return ok(AREA, "nvml", f"NVML reads {facts.nvml_gpus} GPU(s)")
    return None


def _compile_verdict(facts: PlatformFacts, cfg: Config, on_gpu: bool) -> Check:
    """``train.compile`` on or auto: Inductor writes C++ for a CPU and Triton kernels for a GPU. Without its
    tool "on" fails at the first step; "auto" runs, eager, after a trial that says why."""
    mode = cfg.train.compile
    if on_gpu:
        missing = "" if facts.triton else "Triton is not installed (Inductor writes GPU kernels in Triton)"
        fix = "pip install triton (torch's CUDA wheels bring the matching version)"
        have = "Triton"
    else:
        missing = "" if facts.compiler else f"no working C++ compiler ({facts.compiler_problem or 'none found'})"
        fix = "install a C++ compiler (apt install g++), or point CXX at one"
        have = f"the C++ compiler {facts.compiler}"
    if not missing:
        return ok(AREA, "compile", f"train.compile = {mode!r}: Inductor has {have}")
    if mode == "on":
        return fail(AREA, "compile", f"train.compile = 'on' but {missing}: the first step would fail",
                    fix + ", or set train.compile = 'off'")
    return warn(AREA, "compile", f"train.compile = 'auto' but {missing}: its trial will fall back to eager",
                fix + ", or set train.compile = 'off'")


def checks(cfg: Config) -> list[Check]:
    return verdicts(gather(compile_tools=cfg.train.compile != "off"), cfg)
