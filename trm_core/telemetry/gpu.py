"""GPU telemetry through NVML (the ``pynvml`` module of nvidia-ml-py).

Slow, fixed fields (name, memory total, power limit) are read once per device and cached. A field the
device does not support is ``None`` (shown as N/A); no NVML library or no driver gives an unavailable
status with the reason, never an exception.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class GpuSample:
    index: int
    name: str
    util_pct: float | None
    mem_used_mb: float | None
    mem_total_mb: float | None
    temp_c: float | None
    power_w: float | None
    power_limit_w: float | None
    worker_mem_mb: float | None  # memory of the worker's processes on this GPU


@dataclass
class GpuStatus:
    available: bool
    reason: str = ""  # why not, e.g. "no NVIDIA GPU (NVML Shared Library Not Found)"
    gpus: list[GpuSample] = field(default_factory=list)


class GpuProbe:
    def __init__(self, loader: Callable[[], Any] | None = None) -> None:
        self._loader = loader or (lambda: importlib.import_module("pynvml"))
        self._nvml: Any = None
        self._handles: list[Any] = []
        self._static: list[dict[str, Any]] = []
        self._reason = ""
        self._init()

    def _init(self) -> None:
        try:
            nvml = self._loader()
        except ImportError as exc:
            self._reason = f"no NVIDIA GPU (nvidia-ml-py not importable: {exc})"
            return
        try:
            nvml.nvmlInit()
            count = nvml.nvmlDeviceGetCount()
            handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except nvml.NVMLError as exc:
            self._reason = f"no NVIDIA GPU ({exc})"
            return
        if not handles:
            self._reason = "no NVIDIA GPU (NVML sees no devices)"
            return
        self._nvml, self._handles = nvml, handles
        self._static = [{"name": self._field(lambda: _text(nvml.nvmlDeviceGetName(h))) or f"GPU {i}",
                         "mem_total_mb": self._field(lambda: nvml.nvmlDeviceGetMemoryInfo(h).total / 2**20),
                         "power_limit_w": self._field(lambda: nvml.nvmlDeviceGetEnforcedPowerLimit(h) / 1000)}
                        for i, h in enumerate(handles)]

    def _field(self, read: Callable[[], Any]) -> Any:
        try:
            return read()
        except self._nvml_error():
            return None

    def _nvml_error(self) -> type[BaseException]:
        nvml = self._nvml or self._loader()
        return nvml.NVMLError

    def sample(self, worker_pids: set[int] = frozenset()) -> GpuStatus:  # type: ignore[assignment]
        if self._nvml is None:
            return GpuStatus(False, self._reason)
        nvml, out = self._nvml, []
        for i, (h, static) in enumerate(zip(self._handles, self._static)):
            util = self._field(lambda: float(nvml.nvmlDeviceGetUtilizationRates(h).gpu))
            used = self._field(lambda: nvml.nvmlDeviceGetMemoryInfo(h).used / 2**20)
            temp = self._field(lambda: float(nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU)))
            power = self._field(lambda: nvml.nvmlDeviceGetPowerUsage(h) / 1000)
            procs = self._field(lambda: nvml.nvmlDeviceGetComputeRunningProcesses(h))
            mine = None  # unknown (N/A) until the worker's pids are known, not 0
            if procs is not None and worker_pids:
                mine = sum((p.usedGpuMemory or 0) for p in procs if p.pid in worker_pids) / 2**20
            out.append(GpuSample(i, static["name"], util, used, static["mem_total_mb"], temp, power,
                                 static["power_limit_w"], mine))
        return GpuStatus(True, "", out)

    def close(self) -> None:
        if self._nvml is not None:
            self._field(self._nvml.nvmlShutdown)
            self._nvml = None


def nvidia_gpu_present() -> bool:
    """Whether NVML sees an NVIDIA GPU here: cheap, and no torch import (auto-tune's device guess, the dataset
    builders' next-step hint)."""
    probe = GpuProbe()
    try:
        return probe.sample().available
    finally:
        probe.close()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
