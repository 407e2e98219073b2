import pytest

from vgs.config import (
    Config,
    ConfigError,
    apply_overrides,
    base_config,
    flatten,
    from_dict,
    parse_cli_overrides,
    to_dict,
)


def test_dotted_overrides_are_coerced():
    cfg = apply_overrides(
        Config(),
        parse_cli_overrides(
            ["model.speech.layers=3", "train.lr=0.01", "train.augment=false", "model.image.blocks=2-2-2-2"]
        ),
    )
    assert cfg.model.speech.layers == 3 and cfg.train.lr == 0.01 and cfg.train.augment is False
    assert cfg.model.image.blocks == "2-2-2-2"


def test_unknown_key_names_the_key_and_suggests():
    with pytest.raises(
        ConfigError, match=r"unknown config key 'model\.speech\.layer'.*did you mean 'model\.speech\.layers'"
    ):
        apply_overrides(Config(), {"model.speech.layer": 3})


def test_wrong_type_names_the_key():
    with pytest.raises(ConfigError, match=r"'train.epochs' expects int, got 'many'"):
        apply_overrides(Config(), {"train.epochs": "many"})
    with pytest.raises(ConfigError, match="section"):
        apply_overrides(Config(), {"model.speech": 3})


def test_round_trip_and_flatten():
    cfg = base_config("cpu-small")
    assert from_dict(to_dict(cfg)) == cfg
    flat = flatten(cfg)
    assert flat["model.latent"] == 256 and "train.seed" in flat  # the CPU recipe: DG1A256


def test_unknown_base_and_bad_override_syntax():
    with pytest.raises(ConfigError, match="unknown base config 'gpu-huge'"):
        base_config("gpu-huge")
    with pytest.raises(ConfigError, match="key=value"):
        parse_cli_overrides(["model.latent"])


@pytest.mark.parametrize("name", sorted(__import__("vgs.config", fromlist=["BASE_CONFIGS"]).BASE_CONFIGS))
def test_every_base_config_passes_the_range_checks(name):
    from vgs.config import check_consistent

    check_consistent(base_config(name))


@pytest.mark.parametrize(
    "key,value,message",
    [
        ("train.batch_size", 0, "train.batch_size must be >= 1, got 0"),
        ("train.lr", -1.0, "train.lr must be > 0, got -1.0"),
        ("train.epochs", 0, "train.epochs must be >= 1, got 0"),
        ("model.latent", 255, "model.latent must be an even number"),
    ],
)
def test_numbers_training_cannot_use_are_refused_naming_the_key(key, value, message):
    from vgs.config import check_consistent

    with pytest.raises(ConfigError, match=message):
        check_consistent(apply_overrides(base_config("cpu-tiny"), {key: value}))


def test_unknown_key_without_a_near_match_lists_its_section_only():
    with pytest.raises(ConfigError) as e:
        apply_overrides(Config(), {"train.qqqqqqqqqq": 1})
    assert (
        "keys under train: train.amp, " in str(e.value)
        and "train.epochs" in str(e.value)
        and "model.latent" not in str(e.value)
    )
    with pytest.raises(ConfigError) as e:
        apply_overrides(Config(), {"model.speech.layer": 3})
    assert "did you mean" in str(e.value) and "data.root" not in str(e.value)
