"""A stand-in for the ``pynvml`` module, for machines without an NVIDIA GPU.

It fakes only the NVML calls GpuProbe makes, with the real module's error classes and shapes, so the
probe's own code runs unchanged. Scenarios set per-device values; a value that is an exception class is
raised, as the real library does for fields a device does not support.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any


class NVMLError(Exception):
    pass


class NVMLError_NotSupported(NVMLError):  # noqa: N801 - the real module's name
    def __str__(self) -> str:
        return "Not Supported"


class NVMLError_DriverNotLoaded(NVMLError):  # noqa: N801
    def __str__(self) -> str:
        return "Driver Not Loaded"


class FakeNvml:
    NVMLError = NVMLError
    NVML_TEMPERATURE_GPU = 0

    def __init__(self, devices: list[dict[str, Any]], init_error: type[NVMLError] | None = None) -> None:
        self.devices = devices
        self.init_error = init_error
        self.calls: dict[str, int] = {}

    def _get(self, handle: int, key: str) -> Any:
        self.calls[key] = self.calls.get(key, 0) + 1
        value = self.devices[handle][key]
        if isinstance(value, type) and issubclass(value, Exception):
            raise value()
        return value

    def nvmlInit(self) -> None:
        if self.init_error:
            raise self.init_error()

    def nvmlShutdown(self) -> None:
        pass

    def nvmlDeviceGetCount(self) -> int:
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetName(self, h: int) -> bytes:
        return self._get(h, "name").encode()

    def nvmlDeviceGetUtilizationRates(self, h: int) -> Any:
        return SimpleNamespace(gpu=self._get(h, "util"), memory=0)

    def nvmlDeviceGetMemoryInfo(self, h: int) -> Any:
        used, total = self._get(h, "mem")
        return SimpleNamespace(used=used * 2**20, total=total * 2**20, free=(total - used) * 2**20)

    def nvmlDeviceGetTemperature(self, h: int, sensor: int) -> int:
        return self._get(h, "temp")

    def nvmlDeviceGetPowerUsage(self, h: int) -> int:
        return self._get(h, "power_mw")

    def nvmlDeviceGetEnforcedPowerLimit(self, h: int) -> int:
        return self._get(h, "limit_mw")

    def nvmlDeviceGetComputeRunningProcesses(self, h: int) -> list[Any]:
        return [SimpleNamespace(pid=pid, usedGpuMemory=mb * 2**20) for pid, mb in self._get(h, "procs")]


def h100(**over: Any) -> dict[str, Any]:
    base = {"name": "NVIDIA H100 80GB HBM3", "util": 97, "mem": (60_000, 81_559), "temp": 64,
            "power_mw": 512_000, "limit_mw": 700_000, "procs": []}
    return {**base, **over}
