"""--size: every sweep that reproduces a paper table holds its CPU size and its paper size in one
file; at paper size each cell is the paper's own setup (checked against the papers' words, quoted),
nothing of the CPU recipe leaks in, and nothing falls back silently."""

import json

import numpy as np
import pytest

from vgs.config import ConfigError, base_config, flatten
from vgs.search_spaces.model import trial_overrides
from vgs.search_spaces.spec import load, paper_sized
from vgs.sweep.dry_run import sweep_cells

PAPER_SWEEPS = [
    "downsampling",
    "frontends",
    "gru_layers_asr",
    "gru_layers_higy2020",
    "gru_layers_slt",
    "hidden_size",
    "hidden_size_asr",
    "latent_dim",
    "pipeline_vs_mtl",
    "schedulers",
    "sharing",
]


def cells(spec) -> dict[str, object]:
    """{cell label: its resolved config} of a spec (seed 0's)."""
    out = {}
    for cell in sweep_cells(spec)[0]:
        if cell.get("train.seed", spec.seeds[0]) != spec.seeds[0]:
            continue
        label = "/".join(str(v) for k, v in cell.items() if k != "train.seed")
        out[label] = spec.base_config(cell=trial_overrides(cell, spec.seeds, spec.variants))
    return out


def test_every_paper_sweep_has_both_sizes_and_cpu_is_the_default():
    assert sorted(paper_sized()) == PAPER_SWEEPS
    for name in PAPER_SWEEPS:
        cpu, paper = load(name), load(name, "paper")
        assert (cpu.size, paper.size, cpu.sizes) == ("cpu", "paper", ("cpu", "paper")), name
        assert paper.reproduces and cpu.reproduces
        assert paper.gpu == 1 and cpu.gpu == 0, name
        # a table sweep at the paper's size: every cell trains its whole schedule (and is tested)
        assert paper.scheduler["type"] == "none", name
    with pytest.raises(ConfigError, match="one size .*the sweeps with a paper size: downsampling"):
        load("gru_layers", "paper")


@pytest.mark.parametrize("name", PAPER_SWEEPS)
def test_nothing_of_the_cpu_recipe_reaches_the_paper_size(name):
    """Every value of a paper-size cell is its paper base's, or one the paper size or the cell sets."""
    paper = load(name, "paper")
    base = flatten(base_config(paper.base))
    own = (
        set(paper.overrides)
        | {k for named in paper.variants.values() for o in named.values() for k in o}
        | set(paper.space)
    )
    cpu_keys = set(load(name).overrides) | {
        k for named in load(name).variants.values() for o in named.values() for k in o
    }
    for label, cfg in cells(paper).items():
        flat = flatten(cfg)
        changed = {k for k in flat if flat[k] != base[k] and k != "train.seed"}
        assert changed <= own, (label, changed - own)
        leaked = {k: flat[k] for k in cpu_keys - own if flat[k] != base[k]}
        assert not leaked, (label, leaked)


def test_pipeline_vs_mtl_at_paper_size_is_higy_et_al_2020():
    """§3.2.4: "All networks are trained for 32 epochs"; §3.2.2: pipe-seq first trains the ASR/SLT
    module, then decodes each spoken caption "with a beam search of width 10" to train the NLU
    system; §3.3: WER and BLEU "using beam decoding in both cases (with a beam width of 10)"."""
    by_cell = cells(load("pipeline_vs_mtl", "paper"))
    assert len(by_cell) == 18
    for label, cfg in by_cell.items():
        model = cfg.model
        if model.family == "pipe-seq":
            assert (cfg.train.epochs, model.pipeline.asr_epochs) == (64, 32), label  # 32 ASR/SLT + 32 text-image
        else:
            assert cfg.train.epochs == 32, label
        if model.family.startswith("pipe-"):
            assert model.asr.val_beam == model.asr.beam == 10, label  # selection and tables on beam 10
        # higy2020's networks (§3.1, Tables 4-5's chosen values) and its image side: fixed ResNet-152 features
        assert (model.latent, model.speech.layers, model.text.layers) == (2048, 4, 2), label
        assert (model.asr.encoder_layers, model.asr.hidden) == (5, 768), label
        assert (model.image.encoder, model.image.features_from) == ("features", "resnet152"), label
        assert (cfg.train.scheduler, cfg.train.lr, cfg.train.min_lr) == ("cyclic", 2e-4, 1e-6), label
        assert cfg.data.features == "chrupala" and cfg.data.image_crop == 224, label


@pytest.mark.parametrize("name", ["gru_layers_asr", "gru_layers_slt", "hidden_size_asr"])
def test_asr_and_slt_depths_and_widths_are_selected_on_beam_10_at_paper_size(name):
    """§3.3: WER and BLEU "using beam decoding in both cases (with a beam width of 10)": Tables 4-5's
    choices are selected on the validation score the tables report, not on greedy decoding."""
    for label, cfg in cells(load(name, "paper")).items():
        assert cfg.model.asr.val_beam == cfg.model.asr.beam == 10, label
    assert all(cfg.model.asr.val_beam == 1 for cfg in cells(load(name)).values())  # the CPU size stays greedy


def test_latent_dim_at_paper_size_is_mortazavi_2020():
    """§5: "DG2A2048 pair of encoders were first trained up to 120 epoch ... then trained for an
    additional 30 epochs. The initial learning rate on the second run were reset to half the
    initial learning rate of the first run"; "DG4A2048 ... a first run of 50 epochs was followed by
    a second warm run of 10 epochs"; "DG3A1024 and DG4A1024 used an initial epoch length of T0 = 1
    and a restart multiplier of 2"; "some for as long as 127 epochs, including warm restarts";
    "The results shown in table 2 use a mini-batch size of 64"."""
    by = cells(load("latent_dim", "paper"))
    assert list(by) == ["DG2A1024", "DG2A2048", "DG3A1024", "DG4A1024", "DG4A2048"]
    t = {k: c.train for k, c in by.items()}
    assert (t["DG2A2048"].epochs, t["DG2A2048"].restart_epochs, t["DG2A2048"].restart_lr_factor) == (150, 30, 0.5)
    assert (t["DG4A2048"].epochs, t["DG4A2048"].restart_epochs, t["DG4A2048"].restart_lr_factor) == (60, 10, 0.5)
    for pair in ("DG3A1024", "DG4A1024"):
        assert (t[pair].scheduler, t[pair].calwr_t0, t[pair].calwr_t_mult, t[pair].epochs) == ("calwr", 1, 2, 127)
    assert t["DG2A1024"].scheduler == "calr" and t["DG2A1024"].restart_epochs == 0
    for pair, cfg in by.items():
        layers, latent = int(pair[2]), int(pair[4:])
        assert (cfg.model.speech.layers, cfg.model.latent) == (layers, latent), pair
        assert cfg.train.batch_size == 64 and cfg.train.test_at_end, pair
        assert (cfg.model.image.blocks, cfg.data.image_crop, cfg.model.image.encoder) == ("6-12-64-48", 224, "auto")
    # the CPU size keeps the five pairs' depths and schedules at an eighth of the latent size
    cpu = cells(load("latent_dim"))
    assert [c.model.latent for c in cpu.values()] == [128, 256, 128, 128, 256]
    assert cpu["DG2A2048"].train.restart_epochs == 1 and cpu["DG3A1024"].train.scheduler == "calwr"


def test_sharing_at_paper_size_runs_chrupala_2019s_analyses():
    """§3.7: the speaker probe on the development data, the phoneme probe on 2,500 + 2,500
    utterances; Table 4's image space is "the features of the image" (VGG-16's, fixed)."""
    for label, cfg in cells(load("sharing", "paper")).items():
        assert cfg.train.analysis and cfg.train.analysis_captions == 0 and cfg.train.phoneme_utterances == 5000
        assert (cfg.model.image.encoder, cfg.model.image.features_from) == ("features", "vgg16")
        assert cfg.train.epochs == 25 and not cfg.model.three.bidirectional, label


def _features(corpus, path, dim):
    from vgs.data.flickr8k import read_flickr8k

    names = sorted({u.image for u in read_flickr8k(corpus).utterances})
    np.savez(path, names=np.array(names), features=np.zeros((len(names), dim), np.float32))
    return path


def test_paper_size_dry_run_plans_the_papers_epochs_and_refuses_without_image_features(
    tiny_corpus, tmp_path, capsys, caplog
):
    from vgs.sweep.cli import main

    args = [
        "pipeline_vs_mtl",
        "--size",
        "paper",
        "--dry-run",
        "--json",
        "--data",
        str(tiny_corpus),
        "--pick",
        "variant.model=*/full",
        "--seeds",
        "0",
    ]
    assert main(args) == 2  # no image features: refused, with the command that extracts them
    err = capsys.readouterr().err
    assert "data.image_features is empty" in err and "vgs features images" in err and "--arch resnet152" in err
    feats = _features(tiny_corpus, tmp_path / "resnet152.npz", 2048)
    caplog.clear()
    assert main([*args, f"data.image_features={feats}"]) == 0
    assert any(r.getMessage().startswith("size: paper (--size paper): Higy et al. 2020") for r in caplog.records)
    plan = {c["cell"]["variant.model"]: c for c in json.loads(capsys.readouterr().out)}
    assert len(plan) == 6
    assert [p["epochs"] for p in plan["pipe-seq/full"]["phases"]] == [[1, 32], [33, 64]]
    assert all(c["epochs"] == 32 for k, c in plan.items() if k != "pipe-seq/full")
    assert all(c["config"]["data.image_crop"] == 224 and c["image_side"] == "features" for c in plan.values())
    assert all(c["gpu_hours"] > 0 and c["store_bytes"] > 0 for c in plan.values())


def test_latent_dim_dry_run_plans_warm_restarts_and_every_cell_to_its_test(tiny_corpus, tmp_path, capsys):
    from vgs.sweep.cli import main

    bench = tmp_path / "bench.json"  # the shape `vgs bench --json FILE` writes
    bench.write_text(json.dumps({"device": "NVIDIA H200", "amp": "bf16", "configs": {"paper": {"vgs_joint": 300.0}}}))
    args = ["latent_dim", "--size", "paper", "--dry-run", "--data", str(tiny_corpus), "--bench", str(bench)]
    assert main([*args, "--json"]) == 0
    plan = {c["cell"]["variant.pair"]: c for c in json.loads(capsys.readouterr().out)}
    assert plan["DG2A2048"]["warm_restart"] == {"epochs": [121, 150], "lr": 5e-5, "from": "the best checkpoint so far"}
    assert plan["DG4A2048"]["warm_restart"]["epochs"] == [51, 60]
    assert plan["DG2A1024"]["warm_restart"] is None and plan["DG3A1024"]["epochs"] == 127
    assert all(c["config"]["train.test_at_end"] for c in plan.values())
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "pruning: none" in text and "at 300 samples/s for the paper model" in text and "NVIDIA H200" in text
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert main([*args[:-1], str(bad)]) == 2
    assert "configs.paper.vgs_joint" in capsys.readouterr().err


def test_gpu_hours_scale_with_samples_and_parameters():
    from vgs.sweep.dry_run import DEFAULT_RATE, gpu_hours

    rate = dict(DEFAULT_RATE)  # 150 samples/s for the reference's parameters
    assert gpu_hours(150 * 3600, 1000, rate, 1000) == pytest.approx(1.0)
    assert gpu_hours(150 * 3600, 2000, rate, 1000) == pytest.approx(2.0)  # twice the parameters: half the rate


def test_the_size_is_recorded_for_resume(tmp_path):
    from vgs.sweep.options import RECORDED, SweepOptions, resumed_options

    assert "size" in RECORDED
    folder = tmp_path / "pipeline_vs_mtl_20261204-100000"
    folder.mkdir()
    (folder / "tuner.pkl").write_text("x")
    (folder / "options.json").write_text(json.dumps({"name": "pipeline_vs_mtl", "size": "paper"}))
    _, opts = resumed_options(SweepOptions("pipeline_vs_mtl", resume=True), str(tmp_path), "pipeline_vs_mtl")
    assert opts.size == "paper"
    with pytest.raises(ConfigError, match="--size differs"):
        resumed_options(SweepOptions("pipeline_vs_mtl", resume=True, size="cpu"), str(tmp_path), "pipeline_vs_mtl")


def test_a_features_image_side_never_falls_back_to_a_densenet():
    from vgs.config import apply_overrides, check_image_side
    from vgs.models.image import ImageEncoder

    for base in ("higy2020", "chrupala2019"):
        cfg = base_config(base)
        with pytest.raises(ConfigError, match="data.image_features is empty"):
            check_image_side(cfg)
        with pytest.raises(ValueError, match="needs data.image_features"):
            ImageEncoder(cfg.model.image, 64, 0)
        check_image_side(apply_overrides(cfg, {"model.image.encoder": "densenet"}))  # asked for by name: allowed
    check_image_side(base_config("cpu-small"))  # auto: pixels without features, as before


def test_no_silent_stand_ins_at_paper_size(tiny_corpus, tmp_path, capsys):
    """Chrupała 2019's non-aligned rows train speech/text on LibriSpeech: without data.speech_text_root
    the sweep is refused, naming the key and the importer; ASR/SLT-only sweeps ask for no image
    features; image features of another network than the paper's are refused, naming it.  (The
    checks a run makes before any corpus work: the refusals through the command line, the rest
    through the same resolution, without planning every cell.)"""
    from vgs.sweep.cli import main
    from vgs.sweep.options import SweepOptions, resolved_sweep

    def dry_run(*args):
        code = main([*args, "--size", "paper", "--dry-run", "--json", "--data", str(tiny_corpus), "--seeds", "0"])
        return code, capsys.readouterr()

    def resolves(name, picks, **overrides):
        opts = SweepOptions(name, data=str(tiny_corpus), overrides=overrides, picks=picks, seeds=[0], size="paper")
        return resolved_sweep(opts, planning=True)

    vgg = _features(tiny_corpus, tmp_path / "vgg16.npz", 4096)
    code, out = dry_run("sharing", "--pick", "variant.row=row03", f"data.image_features={vgg}")
    assert code == 2 and "data.speech_text_root is empty" in out.err and "LibriSpeech" in out.err, out.err
    assert "vgs.data.librispeech" in out.err and not out.out
    resolves("sharing", {"variant.row": ["row02"]}, **{"data.image_features": str(vgg)})  # aligned: no second corpus
    builtin = {"data.image_features": str(vgg), "data.speech_text_root": "builtin"}
    resolves("sharing", {"variant.row": ["row03"]}, **builtin)  # a second built-in corpus, asked for by name

    resnet = _features(tiny_corpus, tmp_path / "resnet152.npz", 2048)
    code, out = dry_run("sharing", "--pick", "variant.row=row02", f"data.image_features={resnet}")
    assert code == 2 and "2048-d" in out.err and "maps vgg16 features (4096-d" in out.err, out.err

    for sweep in ("gru_layers_asr", "gru_layers_slt", "hidden_size_asr"):
        resolves(sweep, {})  # no image features asked for
    code, out = dry_run("gru_layers_asr")  # and planned in full
    assert code == 0 and "image_features" not in out.err, out.err

    # the built-in corpus at paper size: planned with a note, trained only when named (--data builtin)
    assert main(["latent_dim", "--size", "paper", "--seeds", "0"]) == 2
    assert "no corpus is named" in capsys.readouterr().err


def test_features_made_by_vgs_record_their_network_and_another_one_is_refused(tmp_path):
    from vgs.data.image_features import check_feature_network, recorded_network, write_feature_file

    path = tmp_path / "f.npz"
    write_feature_file(path, ["a.jpg", "b.jpg"], np.zeros((2, 2048), np.float32), {"arch": "resnet50"})
    assert recorded_network(path) == "resnet50"
    check_feature_network(path, "resnet50")
    with pytest.raises(ConfigError, match="holds 2048-d resnet50 features, but .* maps resnet152 features"):
        check_feature_network(path, "resnet152")  # the same size, another network: its record tells
    check_feature_network(path, "")  # no network named (a user's own features): nothing to check


def test_non_aligned_speech_text_without_its_corpus_is_refused_before_corpus_work(tmp_path):
    from vgs.config import apply_overrides
    from vgs.train import fit

    cfg = apply_overrides(
        base_config("cpu-text"),
        {"model.family": "three-task", "data.speech_text": "nonaligned", "data.root": str(tmp_path / "none")},
    )
    with pytest.raises(ConfigError, match="data.speech_text_root is empty"):
        fit(cfg, out_dir=tmp_path / "run")
