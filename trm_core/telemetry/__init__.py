"""Machine telemetry for the front ends: GPUs through NVML, CPU/RAM/disk and the worker's processes
through psutil. UI-free; cheap enough to poll once a second from a background thread."""

from trm_core.telemetry.gpu import GpuProbe, GpuSample, GpuStatus, nvidia_gpu_present
from trm_core.telemetry.host_stats import HostProbe, HostSample

__all__ = ["GpuProbe", "GpuSample", "GpuStatus", "HostProbe", "HostSample", "nvidia_gpu_present"]
