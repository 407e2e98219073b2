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
        ("train.batch_size", 0, "train.batch_size must be >= 2 .*, got 0"),
        ("train.batch_size", 1, r"train.batch_size must be >= 2 \(each item is ranked against the others"),
        ("train.lr", -1.0, "train.lr must be > 0, got -1.0"),
        ("train.epochs", 0, "train.epochs must be >= 1, got 0"),
        ("model.latent", 255, "model.latent must be an even number"),
        ("train.lr", float("inf"), "train.lr must be a finite number, got inf"),
        ("train.margin", float("nan"), "train.margin must be a finite number, got nan"),
        ("train.seed", -1, "train.seed must be a whole number from 0 to 2\\*\\*32 - 1, got -1"),
        ("train.seed", 10**20, "train.seed must be a whole number from 0"),
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


def test_pipe_seq_keys_moved_to_model_pipeline_and_the_old_names_still_work(caplog):
    """model.mtl.asr_epochs / asr_patience became model.pipeline.*: an override, a YAML section or an
    old checkpoint's config with the old names still loads, and a warning names the new key."""
    import logging

    from vgs.config import Config, apply_overrides, base_config, from_dict, to_dict
    from vgs.config.overrides import _warn_renamed

    _warn_renamed.cache_clear()
    with caplog.at_level(logging.WARNING, logger="vgs"):
        cfg = apply_overrides(base_config("cpu-small"), {"model.mtl.asr_epochs": 3, "model.pipeline.asr_patience": 2})
    assert (cfg.model.pipeline.asr_epochs, cfg.model.pipeline.asr_patience) == (3, 2)
    assert "model.mtl.asr_epochs is deprecated: use model.pipeline.asr_epochs" in caplog.text
    old = to_dict(Config())
    old["model"]["mtl"]["asr_patience"] = 4  # as a checkpoint written before the move holds it
    del old["model"]["pipeline"]
    assert from_dict(old).model.pipeline.asr_patience == 4
    assert not hasattr(cfg.model.mtl, "asr_epochs")


@pytest.mark.parametrize(
    "old, new, value",
    [
        ("train.task_optimizers", "train.objective_optimizers", False),
        ("model.mtl.task_layers", "model.mtl.objective_layers", 3),
        ("model.match.task_layers", "model.match.objective_layers", 2),
    ],
)
def test_task_keys_renamed_to_objective_still_work_with_a_warning(caplog, old, new, value):
    """Issue 38: "task" names a family; what it trains for is an objective.  The old key still works
    on the command line, in a YAML and in an old checkpoint's config, and the warning names the new."""
    import logging

    from vgs.config import Config, apply_overrides, base_config, flatten, from_dict, to_dict
    from vgs.config.overrides import _warn_renamed

    _warn_renamed.cache_clear()
    with caplog.at_level(logging.WARNING, logger="vgs"):
        cfg = apply_overrides(base_config("cpu-small"), {old: value})
    assert flatten(cfg)[new] == value and old not in flatten(cfg)
    assert f"{old} is deprecated: use {new}" in caplog.text
    saved = to_dict(Config())  # as a checkpoint written before the rename holds it
    section, key = new.rsplit(".", 1)
    node = saved
    for part in section.split("."):
        node = node[part]
    del node[key]
    node[old.rsplit(".", 1)[1]] = value
    assert flatten(from_dict(saved))[new] == value


def test_a_vgs_home_that_cannot_be_a_folder_is_named(tmp_path, monkeypatch):
    from vgs.config import vgs_home

    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("VGS_HOME", str(tmp_path / "a-file"))
    with pytest.raises(ConfigError, match=r"VGS_HOME .*a-file: not a folder \(a file\); set VGS_HOME to a folder"):
        vgs_home()
    monkeypatch.setenv("VGS_HOME", str(tmp_path / "a-file" / "home"))
    with pytest.raises(ConfigError, match=r"VGS_HOME .*a-file/home: cannot make the folder \(Not a directory\)"):
        vgs_home()
    monkeypatch.setenv("VGS_HOME", str(tmp_path / "new" / "home"))
    assert vgs_home() == tmp_path / "new" / "home" and vgs_home().is_dir()


def test_paper_bases_and_sweeps_named_by_author_and_year_keep_their_old_names_with_a_warning(caplog):
    """Issue 38: Higy et al. 2020's setup is the base `higy2020` and the sweep `gru_layers_higy2020`
    (their code's `seed003` was the public name); the old names still work, and warn."""
    import logging

    from vgs.config import base_config, to_dict
    from vgs.search_spaces.spec import available, load

    with caplog.at_level(logging.WARNING, logger="vgs"):
        old_base = base_config("seed003")
        old_sweep = load("gru_layers_seed003")
    assert "base config 'seed003' is deprecated: use 'higy2020'" in caplog.text
    assert "sweep 'gru_layers_seed003' is deprecated: use 'gru_layers_higy2020'" in caplog.text
    assert to_dict(old_base) == to_dict(base_config("higy2020"))
    assert old_sweep.name == "gru_layers_higy2020" and old_sweep.space == load("gru_layers_higy2020").space
    assert "gru_layers_seed003" not in available() and "gru_layers_higy2020" in available()
