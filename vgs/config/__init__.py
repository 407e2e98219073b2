"""Typed configuration tree.

A dotted path (``model.speech.layers``) is the one name of a knob everywhere: CLI override,
search-space YAML, MLflow param and report column.  Unknown paths and values of the wrong type are
refused with an error that names the key.  The dataclasses are in schema, dicts and overrides in
overrides, whole-config checks in checks, the named base configs and vgs's folders in recipes;
everything is importable from here.  No other vgs module is imported (vgs.config is the bottom layer).
"""

from vgs.config.checks import IMAGE_ENCODERS, check_consistent, check_image_side, check_runnable
from vgs.config.overrides import (
    RENAMED,
    apply_overrides,
    coerce,
    current_key,
    flat_keys,
    flatten,
    from_dict,
    key_type,
    parse_cli_overrides,
    to_dict,
    unflatten,
)
from vgs.config.recipes import (
    BASE_CONFIGS,
    base_config,
    chrupala2019,
    config_from_cli,
    cpu_small,
    cpu_text,
    cpu_tiny,
    default_tracking_uri,
    existing_tracking_uri,
    paper,
    seed003,
    vgs_home,
)
from vgs.config.schema import (
    AsrConfig,
    Config,
    ConfigError,
    DataConfig,
    ImageConfig,
    ModelConfig,
    MultitaskConfig,
    PipelineConfig,
    SpeechConfig,
    TextConfig,
    ThreeTaskConfig,
    TrainConfig,
)

__all__ = [
    "IMAGE_ENCODERS",
    "check_consistent",
    "check_image_side",
    "check_runnable",
    "apply_overrides",
    "RENAMED",
    "coerce",
    "current_key",
    "flat_keys",
    "flatten",
    "from_dict",
    "key_type",
    "parse_cli_overrides",
    "to_dict",
    "unflatten",
    "BASE_CONFIGS",
    "base_config",
    "chrupala2019",
    "config_from_cli",
    "cpu_small",
    "cpu_text",
    "cpu_tiny",
    "default_tracking_uri",
    "existing_tracking_uri",
    "paper",
    "seed003",
    "vgs_home",
    "AsrConfig",
    "Config",
    "ConfigError",
    "DataConfig",
    "ImageConfig",
    "ModelConfig",
    "MultitaskConfig",
    "PipelineConfig",
    "SpeechConfig",
    "TextConfig",
    "ThreeTaskConfig",
    "TrainConfig",
]
