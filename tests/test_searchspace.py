import subprocess
import sys
from pathlib import Path

import pytest

from vgs.config import ConfigError
from vgs.search_spaces import checks as spec_checks
from vgs.search_spaces import model as spec_model
from vgs.search_spaces import spec as searchspace

SPACES = sorted((Path(__file__).resolve().parents[1] / "vgs" / "search_spaces").glob("*.yaml"))


@pytest.mark.parametrize("path", SPACES, ids=[p.stem for p in SPACES])
def test_every_search_space_validates(path):
    spec = searchspace.load(str(path))
    assert spec.space and spec.metric.startswith("val_")


def test_gru_layers_searches_depth_and_latent_with_optuna_and_halving_then_confirms():
    spec = searchspace.load("gru_layers")
    assert spec.space["model.speech.layers"]["choice"] == [1, 2]
    assert spec.space["model.latent"]["choice"] == [64, 128, 256]
    assert spec.algorithm == "optuna" and spec.scheduler["type"] == "halving" and spec.num_samples == 6
    assert spec.confirm_top == 2 and spec.confirm_seeds == [0, 1]
    grid = searchspace.load("gru_layers_grid")  # the same space, every cell to the full budget
    assert grid.space == spec.space and grid.algorithm == "grid" and grid.scheduler["type"] == "none"
    assert grid.base == spec.base and grid.overrides == spec.overrides


@pytest.mark.parametrize(
    "confirm, message",
    [
        ("{top: 2, seeds: [0]}", "two or more distinct seeds"),
        ("{top: -1, seeds: [0, 1]}", "confirm.top must be >= 0"),
        ("{top: two, seeds: [0, 1]}", "confirm.top must be an integer"),
        ("{top: 2, seeds: 2}", "confirm.seeds must be a list"),
        ("{top: 2, seeds: [0, 1], each: 3}", "unknown key"),
        ("{top: 2, seeds: [0, 1, 1]}", r"confirm.seeds \[0, 1, 1\] repeats 1; a repeated seed reruns the same"),
    ],
)
def test_bad_confirmation_is_refused_naming_the_key(tmp_path, confirm, message):
    path = write(tmp_path, f"base: cpu-tiny\nspace:\n  model.latent: {{choice: [64, 128]}}\nconfirm: {confirm}\n")
    with pytest.raises(ConfigError, match=message):
        searchspace.load(path)


def test_a_repeated_seed_is_refused_from_the_yaml_and_from_the_command_line(tmp_path):
    # the verdict's n counts seeds: a repeated one would be the same run counted twice
    path = write(tmp_path, "base: cpu-tiny\nspace:\n  model.latent: {choice: [64, 128]}\nseeds: [0, 1, 0]\n")
    with pytest.raises(ConfigError, match=r"seeds \[0, 1, 0\] repeats 0"):
        searchspace.load(path)
    from vgs.sweep.options import SweepOptions, resolved_sweep

    with pytest.raises(ConfigError, match=r"seeds \[2, 2\] repeats 2.*--seeds"):
        resolved_sweep(SweepOptions("smoke", seeds=[2, 2]))


def write(tmp_path, text):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    return str(p)


@pytest.mark.parametrize(
    "text,message",
    [
        ("space: {model.speech.layers: {choice: [1]}}\nsearh: {}\n", "unknown key.*searh"),
        ("space: {model.speech.layer: {choice: [1]}}\n", "unknown config key 'model.speech.layer'"),
        ("space: {model.latent: {choice: [abc]}}\n", "'model.latent' expects int"),
        ("space: {model.latent: {normal: [1, 2]}}\n", "space.model.latent must be one of"),
        ("space: {model.latent: {choice: [255]}}\n", "cannot be built.*even"),
        ("space: {model.latent: {choice: [64]}}\nmetric: accuracy\n", "metric 'accuracy'"),
        ("space: [1, 2\n", "invalid YAML"),
        ("space: {model.latent: {choice: [64]}}\nsearch: {sampler: annealing}\n", "search.sampler must be"),
        ("space: {train.lr: {loguniform: [0.001, 0.01]}}\nsearch: {sampler: bruteforce}\n", "bruteforce enumerates"),
        ("space: {train.epochs: {choice: [1, 2]}}\nscheduler: {type: asha}\n", "scheduler \\(asha\\) prunes"),
        ("space: {train.epochs: {choice: [1, 2]}}\nscheduler: {type: halving}\n", "scheduler \\(halving\\) prunes"),
        ("space: {model.latent: {choice: [64]}}\nscheduler: {type: hyperband}\n", "asha, halving or none"),
        (
            "space: {model.latent: {choice: [64]}}\nscheduler: {type: halving}\nresources: {workers: 2}\n",
            "multi-worker trials",
        ),
        (
            "space: {model.latent: {choice: [64]}}\nsearch: {num_samples: many}\n",
            "search.num_samples must be an integer",
        ),
        ("space: {train.lr: {loguniform: [0, 0.01]}}\n", "loguniform needs bounds > 0"),
        ("space: {train.lr: {loguniform: [abc, 1]}}\n", "bounds must be numbers"),
        ("space: {train.lr: {uniform: [0.01, 0.001]}}\n", "low < high"),
        ("space: {model.latent: {uniform: [64, 256]}}\n", "integer key: use randint"),
        ("space: {train.lr: {randint: [1, 3]}}\n", "real-valued key"),
        ("space: {train.batch_size: {choice: [0, 16]}}\n", "train.batch_size must be >= 2 .*, got 0"),
        ("space: {model.latent: {choice: [64]}}\noverrides: {train.lr: -1}\n", "train.lr must be > 0, got -1"),
        # issue 36 #7 and #14: repeats, infinities and seeds out of numpy's range, refused up front
        ("space: {model.speech.layers: {choice: [1, 1, 2]}}\n", "space.model.speech.layers.choice repeats 1"),
        ("space: {train.lr: {loguniform: [0.001, .inf]}}\n", "bounds must be finite"),
        ("space: {model.latent: {choice: [64]}}\noverrides: {train.lr: .inf}\n", "train.lr must be a finite number"),
        ("space: {train.margin: {choice: [0.2, .inf]}}\n", "train.margin must be a finite number"),
        ("space: {model.latent: {choice: [64]}}\nseeds: [-1, 0]\n", r"seeds \[-1\] must be whole numbers from 0"),
        ("space: {model.latent: {choice: [64]}}\nseeds: [0, 123456789012345678901]\n", "must be whole numbers"),
        ("space: {model.latent: {choice: [64, 100000000]}}\n", r"network has .* parameters: training it holds"),
    ],
)
def test_bad_search_spaces_are_refused_with_the_reason(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        searchspace.load(write(tmp_path, text))


def test_a_huge_choice_list_or_yaml_is_refused_before_it_is_parsed_in_full(tmp_path):
    """Issue 36 #7: a 10 MB choice list was accepted; its dry run took 142 s and 3 GB."""
    values = ", ".join(str(0.001 * (i + 1)) for i in range(1001))
    with pytest.raises(ConfigError, match="space.train.lr.choice has 1001 values; at most 1000"):
        searchspace.load(write(tmp_path, f"space: {{train.lr: {{choice: [{values}]}}}}\n"))
    big = write(tmp_path, "space: {train.lr: {choice: [" + ", ".join(["0.1"] * 60_000) + "]}}\n")
    with pytest.raises(ConfigError, match=r"MiB is not a search space \(at most 256 KiB"):
        searchspace.load(big)


def test_unknown_sweep_lists_what_exists(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "vgs.sweep", "no_such_sweep"], capture_output=True, text=True, cwd=tmp_path
    )
    assert r.returncode == 2
    assert "unknown sweep 'no_such_sweep'" in r.stderr and "gru_layers" in r.stderr


def test_space_contains():
    assert spec_model.space_contains({"choice": [2, 3]}, 3) and not spec_model.space_contains({"choice": [2, 3]}, 4)
    assert spec_model.space_contains({"loguniform": [1e-4, 1e-2]}, 1e-3)
    assert not spec_model.space_contains({"randint": [1, 4]}, 5)


def test_the_driver_prepares_every_data_configuration_of_the_cells():
    from vgs.data.featurisers import Mfcc

    """Cells whose data section differs (image size, split, MFCC statistics, a non-aligned
    speech/text corpus) are prepared by the driver, so no two trials build one store at once."""
    datas = spec_checks.cell_data_configs(searchspace.load("cpu_recipe"))
    base = searchspace.load("cpu_recipe").base_config().data
    assert datas[0] == (base, Mfcc("mortazavi"), False) and len(datas) == 5
    assert {(d.image_resize, d.builtin_test, d.speech_norm) for d, _, _ in datas} == {
        (80, 0, "utterance"),
        (80, 0, "corpus"),
        (40, 0, "utterance"),
        (80, 1000, "utterance"),
        (40, 1000, "corpus"),
    }
    sharing = spec_checks.cell_data_configs(searchspace.load("sharing"))
    assert [nonaligned for _, _, nonaligned in sharing] == [False, True]
    assert spec_checks.cell_data_configs(searchspace.load("gru_layers")) == [(base, Mfcc("mortazavi"), False)]


def test_a_cell_that_changes_the_built_in_corpus_gets_its_own_corpus(tmp_path, monkeypatch):
    """The trials' base leaves the built-in corpus unresolved, so a cell's data.builtin_* choice
    (cpu_recipe's 1250-training-images) reaches its trial instead of the base's corpus."""
    from vgs.config import apply_overrides
    from vgs.data.prepare import resolve_paths
    from vgs.sweep.options import trial_base

    monkeypatch.chdir(tmp_path)
    spec = searchspace.load("cpu_recipe")
    base = trial_base(spec, {"data.image_features": "feats.npz"})
    assert base.data.root == "" and base.data.image_features == str(tmp_path / "feats.npz")  # made absolute
    default = resolve_paths(base.data).root
    cell = apply_overrides(base, spec.variants["recipe"]["1250-training-images"])
    assert resolve_paths(cell.data).root != default and resolve_paths(cell.data).root.endswith("split1250-250-1000")
    mine = trial_base(spec, {"data.root": "corpus"}).data.root
    assert mine == str(tmp_path / "corpus")


def test_latent_dim_gives_dg3_and_dg4_the_papers_warm_restarts():
    from vgs.search_spaces.model import trial_overrides
    from vgs.search_spaces.spec import load

    spec = load("latent_dim", "paper")  # the CPU size keeps cpu-small's wsd for plain pairs
    cfg = lambda pair: spec.base_config(trial_overrides({"variant.pair": pair}, spec.seeds, spec.variants))
    for pair in ("DG3A1024", "DG4A1024"):
        t = cfg(pair).train
        assert (t.scheduler, t.calwr_t0, t.calwr_t_mult) == ("calwr", 1, 2), pair
    assert cfg("DG2A1024").train.scheduler == "calr"


def test_pick_keeps_named_or_pattern_matched_variants_and_names_a_miss():
    from vgs.search_spaces.checks import restrict
    from vgs.search_spaces.spec import load

    spec = load("pipeline_vs_mtl")
    restrict(spec, {"variant.model": ["*/full", "text-image/full"]})
    assert spec.space["variant.model"]["choice"] == [
        "mtl-asr/full",
        "pipe-seq/full",
        "pipe-ind/full",
        "mtl-match/full",
        "speech-image/full",
        "text-image/full",
    ]
    with pytest.raises(ConfigError, match="'x\\*' matches none of"):
        restrict(load("pipeline_vs_mtl"), {"variant.model": ["x*"]})
    with pytest.raises(ConfigError, match="not among"):
        restrict(load("pipeline_vs_mtl"), {"variant.model": ["speech-image"]})


HUGE = """description: six keys of ten choices
base: cpu-tiny
search: {SEARCH}
space:
""" + "".join(
    f"  {key}: {{choice: {values}}}\n"
    for key, values in [
        ("train.lr", [round(0.001 * k, 3) for k in range(1, 11)]),
        ("train.margin", [round(0.1 + 0.01 * k, 2) for k in range(10)]),
        ("train.batch_size", list(range(8, 18))),
        ("train.clip_grad", [0.5 * k for k in range(1, 11)]),
        ("model.latent", [32 * k for k in range(1, 11)]),
        ("train.epochs", list(range(1, 11))),
    ]
)


def test_a_huge_search_is_refused_before_any_cell_is_built(tmp_path, capsys):
    """Issue 26 #2: 10^6 grid cells (or Optuna samples) are counted, not enumerated, and refused
    naming the count and the flag that raises the limit."""
    import time

    from vgs.sweep.cli import main

    for search, what in [
        ("{algorithm: grid}", "10 x 10 x 10 x 10 x 10 x 10 grid cells"),
        ("{algorithm: optuna, sampler: bruteforce, num_samples: 1000000}", "1000000 Optuna samples"),
    ]:
        path = tmp_path / "huge.yaml"
        path.write_text(HUGE.replace("{SEARCH}", search))
        t0 = time.time()
        assert main([str(path), "--dry-run"]) == 2
        err = capsys.readouterr().err
        assert f"would run 1000000 trials ({what} x 1 seed(s))" in err and "--max-trials 1000000" in err, err
        assert time.time() - t0 < 60


def test_the_dry_run_of_a_large_optuna_space_lists_the_base_not_every_combination(tmp_path):
    from vgs.sweep.dry_run import sweep_cells

    path = tmp_path / "huge.yaml"
    path.write_text(HUGE.replace("{SEARCH}", "{algorithm: optuna, num_samples: 20}"))
    spec = searchspace.load(str(path))
    spec_checks.validate(spec)  # 20 trials: within the limit
    cells, note = sweep_cells(spec)
    assert cells == [{"train.seed": 0}] and "samples 20 of 1000000 combinations" in note


def test_a_choice_list_of_mixed_types_names_the_yaml_and_the_space_key(tmp_path):
    """Issue 26 #13: its error was the bare coercion message, unlike every other YAML error."""
    path = tmp_path / "mixed.yaml"
    path.write_text('description: mixed\nbase: cpu-tiny\nspace:\n  model.latent: {choice: [64, "big", 128]}\n')
    with pytest.raises(
        ConfigError, match=r"mixed\.yaml: space\.model\.latent\.choice \[64, 'big', 128\]: .*expects int"
    ):
        searchspace.load(str(path))
