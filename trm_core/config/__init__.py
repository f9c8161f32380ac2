"""The run configuration: the schema (``schema``), resolution from layers with validation (``resolve``), a
run's own saved config and the resume rules (``run``), one start request (``start``), and the shipped
config.toml (``reference``)."""

from trm_core.config.resolve import load_toml, parse_scalar, parse_set, resolve, tomllib
from trm_core.config.run_config import SAFE_ON_RESUME, check_resume_overrides, read_run_config, resolve_run_config, write_config
from trm_core.config.start import Start, add_start_arguments, saved_settings
from trm_core.config.schema import (ALERT_KINDS, BUILTIN_PRESETS, SECTIONS, AlertsConfig, AutotuneConfig, Config, ConfigError, DataConfig, ExportConfig,
                                    ModelConfig, SupervisorConfig, TrainConfig)

__all__ = ["ALERT_KINDS", "AlertsConfig", "AutotuneConfig", "BUILTIN_PRESETS", "Config", "ConfigError", "DataConfig", "ExportConfig", "ModelConfig", "SAFE_ON_RESUME",
           "SECTIONS", "SupervisorConfig", "TrainConfig", "add_start_arguments", "check_resume_overrides", "load_toml", "parse_scalar",
           "parse_set", "read_run_config", "resolve", "resolve_run_config", "saved_settings", "Start", "tomllib",
           "write_config"]
