"""Pure parts of vgs.results.report: the mean ± sd cell and the row order of a generic sweep's table;
its refusal of a tracking database that does not exist."""

import pytest

from vgs.results.report import mean_sd, natural_key, table_for


def test_mean_sd_shows_no_sd_for_a_single_seed():
    assert mean_sd([]) == "-"
    assert mean_sd([0.1234]) == "0.123 (n=1)"
    assert mean_sd([0.4, 0.5]) == "0.450 ± 0.071 (n=2)"


def test_rows_sort_by_number_not_by_string():
    groups = {("1", "256"): [0.4], ("1", "64"): [0.3], ("2", "128"): [0.2], ("1", "128"): [0.35]}
    table = table_for("gru_layers", ["model.speech.layers", "model.latent"], groups, "val_s2i_r10")
    rows = [line.split("|")[1:3] for line in table.splitlines()[2:]]
    assert [(a.strip(), b.strip()) for a, b in rows] == [("1", "64"), ("1", "128"), ("1", "256"), ("2", "128")]


def test_text_sorts_after_numbers():
    assert sorted([("b",), ("10",), ("a",), ("9",)], key=natural_key) == [("9",), ("10",), ("a",), ("b",)]


def test_a_two_key_space_gets_a_grid_and_each_row_says_how_its_trials_ended():
    from vgs.results.plots import TrialRun
    from vgs.results.report import grid_table, trial_status

    groups = {("1", "256"): [0.4, 0.41], ("1", "64"): [0.3], ("2", "64"): [0.2]}
    grid = grid_table(["model.speech.layers", "model.latent"], groups).splitlines()
    assert grid[0] == "| model.speech.layers \\ model.latent | 64 | 256 |"
    assert grid[2] == "| 1 | 0.300 (n=1) | 0.405 ± 0.007 (n=2) |" and grid[3] == "| 2 | 0.200 (n=1) | - |"
    runs = [
        TrialRun("a", {"k": "1"}, "0", [(1, 0.1), (2, 0.2), (3, 0.3)], 0.3),
        TrialRun("b", {"k": "1"}, "1", [(1, 0.1), (2, 0.2), (3, 0.3)], 0.3),
        TrialRun("c", {"k": "2"}, "0", [(1, 0.1)], 0.1, pruned=True),
    ]
    assert trial_status(runs) == {("1",): "2 completed, 3 ep", ("2",): "1 pruned at ep 1"}
    table = table_for("x", ["k"], {("1",): [0.3, 0.3], ("2",): [0.1]}, "val_r10", trial_status(runs))
    assert table.splitlines()[0] == "| k | val_r10 mean ± sd | trials |"
    assert table.splitlines()[3] == "| 2 | 0.100 (n=1) | 1 pruned at ep 1 |"


def test_test_split_scores_sit_beside_the_papers_test_numbers():
    from vgs.results.plots import TrialRun
    from vgs.results.report import paper_tables, query_score

    def run(cell, seed, **metrics):
        return TrialRun(f"{cell} s{seed}", {"variant.model": cell}, seed, metrics=metrics)

    trials = [
        run(
            "pipe-seq/full",
            "0",
            test_s2i_r10=0.5,
            test_s2i_r1=0.1,
            test_s2i_r5=0.3,
            test_s2i_medr=9.0,
            sel_val_s2i_r1=0.1,
            sel_val_s2i_r5=0.2,
            sel_val_s2i_medr=12.0,
        ),
        run(
            "pipe-seq/full",
            "1",
            test_s2i_r10=0.6,
            test_s2i_r1=0.2,
            test_s2i_r5=0.4,
            test_s2i_medr=7.0,
            sel_val_s2i_r1=0.1,
            sel_val_s2i_r5=0.2,
            sel_val_s2i_medr=12.0,
        ),
        run("text-image/full", "0", sel_val_t2i_r1=0.3, sel_val_t2i_r5=0.6, sel_val_t2i_medr=4.0),
    ]
    assert query_score(trials[2].metrics, "sel_val", "r1") == 0.3  # text-image: its own (text) queries
    text = paper_tables("pipeline_vs_mtl", trials, ["variant.model"])
    assert "| text-image/full | 0.300 / 0.600 / 4.0 | 0.258 / 0.566 / 4.0 | 1 |" in text
    assert "| pipe-seq/full | 0.550 ± 0.071 | 0.631 | 2 |" in text  # Table 3, test R@10
    assert "| pipe-seq/full | 0.150 ± 0.071 / 0.350 ± 0.071 / 8.0 ± 1.4 | 0.218 / 0.499 / 6.0 | 2 |" in text
    assert "mtl-asr/full" not in text  # no runs of it: no row
    latent = paper_tables(
        "latent_dim",
        [TrialRun("x", {"variant.pair": "DG3A1024"}, "0", metrics={"test_s2i_r10": 0.1, "test_i2s_r10": 0.2})],
        ["variant.pair"],
    )
    assert "| DG3A1024 | 0.100 / 0.200 | 0.677 / 0.671 | 1 |" in latent and "test R@10" in latent


def test_sharing_analyses_sit_beside_seed_004_tables_3_to_5():
    from vgs.results.plots import TrialRun
    from vgs.results.report import paper_tables

    run = TrialRun(
        "row06 s0",
        {"variant.row": "row06"},
        "0",
        metrics={
            "analysis_speaker_acc": 0.1,
            "analysis_rsa_mfcc": 0.05,
            "analysis_rsa_text": 0.2,
            "analysis_rsa_image": 0.3,
            "analysis_s2t_rsa_mfcc": 0.1,
            "analysis_s2t_rsa_text": 0.25,
            "analysis_s2t_rsa_image": 0.1,
            "analysis_phoneme_acc_mfcc": 0.3,
            "analysis_phoneme_acc_random": 0.4,
            "analysis_phoneme_acc": 0.5,
        },
    )
    text = paper_tables("sharing", [run, TrialRun("row01 s0", {"variant.row": "row01"}, "0")], ["variant.row"])
    assert "| row06 | 0.100 | 0.085 | best of 1 |" in text
    assert "| row06 | 0.050 / 0.200 / 0.300 | 0.030 / 0.212 / 0.222 | best of 1 |" in text
    assert "| row06 | 0.100 / 0.250 / 0.100 | 0.099 / 0.243 / 0.105 | best of 1 |" in text
    assert "| row06 | 0.300 / 0.400 / 0.500 | 0.284 / 0.486 / 0.578 | best of 1 |" in text and "Table 5" in text
    assert "row01" not in text  # no analyses (nor test scores) logged for it: no row


def test_sharing_analyses_are_the_best_seeds_as_in_chrupala_2019():
    """Tables 3-5 are "carried out on the single best seed/epoch for each configuration": of three
    seeds, the analyses of the one with the best selected-epoch score, not their mean."""
    from vgs.results.plots import TrialRun
    from vgs.results.report import paper_tables

    runs = [
        TrialRun(f"row01 s{s}", {"variant.row": "row01"}, str(s), score=score, metrics={"analysis_speaker_acc": acc})
        for s, score, acc in ((0, 0.20, 0.10), (1, 0.25, 0.50), (2, 0.22, 0.70))
    ]
    text = paper_tables("sharing", runs, ["variant.row"], mode="max")
    assert "| row01 | 0.500 | 0.297 | best of 3 |" in text  # seed 1 scored best; the mean would be 0.433
    low = paper_tables("sharing", runs, ["variant.row"], mode="min")  # e.g. a WER: the lowest is best
    assert "| row01 | 0.100 | 0.297 | best of 3 |" in low
    # a real corpus without phoneme timings: Table 5's row says why it is empty
    assert (
        "| row01 | no phoneme timings in this corpus (pass a forced aligner's as data.alignments) "
        "| 0.284 / 0.486 / 0.528 |" in text
    )


def test_pipeline_vs_mtl_says_per_condition_whether_table_2s_order_holds():
    from vgs.results.report import PAPER, order_lines

    groups = {
        ("text-image/full",): [0.50, 0.52],
        ("pipe-ind/full",): [0.47, 0.48],
        ("pipe-seq/full",): [0.46, 0.47],
        ("mtl-asr/full",): [0.44, 0.45],
        ("mtl-match/full",): [0.42, 0.43],
        ("speech-image/full",): [0.39, 0.40],
        ("text-image/reduced",): [0.3],
        ("speech-image/reduced",): [0.35],
    }
    full, chance_full, reduced, chance_reduced = order_lines(PAPER["pipeline_vs_mtl"], groups, 0.04, "max")[:4]
    assert full.startswith("- full: order text-image > pipe-ind, pipe-seq > mtl-asr > mtl-match > speech-image holds")
    assert chance_full == "- full: speech-image 0.395 ± 0.007 is 50 sd above chance 0.040"
    assert (
        reduced == "- reduced: order text-image > pipe-ind, pipe-seq > mtl-asr > mtl-match > speech-image: "
        "cannot tell, no score for pipe-ind, pipe-seq, mtl-asr, mtl-match"
    )
    assert chance_reduced == "- reduced: speech-image 0.350 (one seed) against chance 0.040: no sd to compare"


def test_the_order_check_is_per_condition_and_agrees_with_the_papers_own_columns():
    """Fed the paper's own Tables 1-2, the check says each condition's order holds: in the
    translations column mtl-translate (0.394) beats both pipelines (0.347, 0.345), which the full
    condition's order would have called broken."""
    from vgs.results.report import PAPER, order_lines

    cells = PAPER["pipeline_vs_mtl"]["cells"]
    groups = {(f"{m}/{c}",): [v] for (m, c), v in cells.items()}
    lines = order_lines(PAPER["pipeline_vs_mtl"], groups, None, "max")
    orders = [line for line in lines if "order" in line]
    assert len(orders) == 3 and all(" holds: " in line for line in orders), orders
    assert orders[2].startswith(
        "- translations: order text-image > mtl-asr > pipe-ind, pipe-seq, mtl-match > speech-image holds"
    )
    full_order = {**PAPER["pipeline_vs_mtl"], "orders": {"translations": PAPER["pipeline_vs_mtl"]["orders"]["full"]}}
    assert "does NOT hold" in order_lines(full_order, groups, None, "max")[0]


def test_the_report_reads_the_latest_sweep_or_the_one_named(tmp_path):
    """Two sweeps of one name in a real MLflow store: the latest by default, an earlier one by its
    run name (the results folder's) or id, and an unknown name refused with the sweeps it has."""
    import time

    import pytest
    from mlflow.tracking import MlflowClient

    from vgs.config import ConfigError
    from vgs.results.report import sweep_run

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.create_experiment("vgs-demo")
    parents = []
    for name in ("demo_20261202-100000", "demo_20261202-110000"):
        parent = client.create_run(exp, run_name=name, tags={"vgs.kind": "sweep"})
        client.create_run(exp, run_name=f"trial of {name}", tags={"mlflow.parentRunId": parent.info.run_id})
        parents.append(parent)
        time.sleep(0.01)  # distinct start times
    latest, trials = sweep_run(client, "demo")
    assert latest.info.run_name == "demo_20261202-110000" and [t.info.run_name for t in trials] == [
        "trial of demo_20261202-110000"
    ]
    assert sweep_run(client, "demo", "demo_20261202-100000")[0].info.run_id == parents[0].info.run_id
    assert sweep_run(client, "demo", parents[0].info.run_id)[1][0].info.run_name == "trial of demo_20261202-100000"
    with pytest.raises(
        ConfigError, match="no 'demo' sweep named 'demo_2025'.*demo_20261202-110000, demo_20261202-100000"
    ):
        sweep_run(client, "demo", "demo_2025")


def test_a_report_of_a_yaml_given_by_path_goes_to_its_sweeps_reports_folder(tmp_path, monkeypatch):
    """Issue 36 #15: an absolute YAML path crashed (FileExistsError: the report folder was the file
    itself) and ../x.yaml wrote outside reports/."""
    from mlflow.tracking import MlflowClient

    from vgs.results.report import report
    from vgs.search_spaces.spec import find

    monkeypatch.setenv("VGS_HOME", str(tmp_path / "home"))
    (tmp_path / "mine.yaml").write_text(find("smoke").read_text())
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("vgs-mine", artifact_location=(tmp_path / "artifacts").as_uri())
    parent = client.create_run(exp, run_name="mine_20261207-100000", tags={"vgs.kind": "sweep"})
    for layers, score in ((1, 0.3), (2, 0.4)):
        child = client.create_run(exp, tags={"mlflow.parentRunId": parent.info.run_id})
        client.log_param(child.info.run_id, "model.speech.layers", layers)
        client.log_param(child.info.run_id, "train.seed", 0)
        client.log_metric(child.info.run_id, "val_s2i_r10", score, step=1)
        client.log_metric(child.info.run_id, "sel_val_s2i_r10", score)
        client.set_terminated(child.info.run_id)
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    for given in (str(tmp_path / "mine.yaml"), "../mine.yaml"):
        text = report(given, uri)
        assert text.startswith("# mine\n") and f"saved {tmp_path / 'home' / 'reports' / 'mine' / 'report.md'}" in text
    assert not (tmp_path / "home" / "x.yaml").exists() and (tmp_path / "mine.yaml").is_file()


def test_a_pruned_cell_says_it_has_no_test_scores():
    """Test scores come from a trial's selected epoch after its last; a pruned trial has none, and
    the table says so rather than leaving the cell out."""
    from vgs.results.plots import TrialRun
    from vgs.results.report import paper_tables

    run = TrialRun("DG4A2048 s0", {"variant.pair": "DG4A2048"}, "0", pruned=True, metrics={"sel_val_s2i_r10": 0.3})
    latent = paper_tables("latent_dim", [run], ["variant.pair"])
    assert "| DG4A2048 | pruned: no test scores | 0.620 / 0.622 | 1 |" in latent


def test_a_report_of_hundreds_of_configurations_lists_the_best_and_counts_the_rest():
    from vgs.results.report import table_for
    from vgs.results.tables import TABLE_TOP

    groups = {(str(i),): [i / 100] for i in range(60)}
    table = table_for("not-a-paper", ["train.lr"], groups, "val_s2i_r1", mode="min")
    lines = table.splitlines()
    assert lines[2].startswith("| 0 |") and len(lines) == 2 + TABLE_TOP + 1  # best (lowest) first
    assert (
        lines[-1] == "... and 35 more configurations (means 0.250 to 0.590); every trial is under the MLflow parent run"
    )
    few = table_for("not-a-paper", ["train.lr"], {(str(i),): [0.5] for i in (10, 2, 1)}, "val_s2i_r1")
    assert [row.split("|")[1].strip() for row in few.splitlines()[2:]] == ["1", "2", "10"]  # natural order


def test_a_report_of_a_database_that_does_not_exist_is_refused_without_making_one(tmp_path):
    from vgs.config import ConfigError
    from vgs.results.report import report
    from vgs.results.retrieve import checkpoint_file

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(ConfigError, match=f"no MLflow database at {tmp_path / 'mlflow.db'}; run a sweep first"):
        report("smoke", uri)
    with pytest.raises(ConfigError, match="--run no-such-run: not a checkpoint file or folder, and no MLflow database"):
        checkpoint_file("no-such-run", uri)
    assert not (tmp_path / "mlflow.db").exists()  # MLflow made an empty one, then found no runs in it


def test_chrupala_table_2_is_the_run_best_on_validation_not_the_mean():
    """Chrupała 2019 Table 2's test numbers are "obtained by using the best run/epoch determined on the
    validation data": of three seeds, the test scores of the one whose validation score selected it."""
    from vgs.results.plots import TrialRun
    from vgs.results.report import paper_tables

    runs = [
        TrialRun(
            f"row01 s{s}",
            {"variant.row": "row01"},
            str(s),
            score=val,
            metrics={"test_s2i_r10": r10, "test_s2i_medr": m},
        )
        for s, val, r10, m in ((0, 0.20, 0.30, 40.0), (1, 0.26, 0.22, 55.0), (2, 0.23, 0.25, 50.0))
    ]
    text = paper_tables("sharing", runs, ["variant.row"])
    assert "| row01 | 0.220 / 55.0 | 0.244 / 51.0 | best of 3 |" in text, text  # the mean would be 0.257 / 48.3


def _log_sweep(client, name: str, cells: list[tuple[dict, dict]]) -> None:
    """A sweep's parent run and one child run per (params, metrics) in a real MLflow store."""
    exp = client.get_experiment_by_name(f"vgs-{name}")
    exp = exp.experiment_id if exp else client.create_experiment(f"vgs-{name}")
    parent = client.create_run(exp, run_name=f"{name}_20261207-100000", tags={"vgs.kind": "sweep"})
    for params, metrics in cells:
        child = client.create_run(exp, tags={"mlflow.parentRunId": parent.info.run_id})
        for k, v in params.items():
            client.log_param(child.info.run_id, k, v)
        for k, v in metrics.items():
            client.log_metric(child.info.run_id, k, v, step=1)
        client.set_terminated(child.info.run_id)


def test_figure_3_has_the_speech_only_baseline_and_tables_9_10_have_our_numbers(tmp_path, monkeypatch):
    """Higy et al. 2020 Figure 3 draws the speech-image baseline beside the text models: it comes from
    the pipeline_vs_mtl sweep in the same store (or the report says how to get it); Tables 9-10 put our
    recognizers' validation WER / BLEU beside the paper's, one definition per row, named."""
    from mlflow.tracking import MlflowClient

    from vgs.results.report import report

    monkeypatch.setenv("VGS_HOME", str(tmp_path / "home"))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    beams = {"model.asr.beam": "10", "model.asr.val_beam": "1"}
    cells = []
    for seed in (0, 1):
        for fraction, wer, bleu in (("1.0", 0.2, 0.3), ("0.112", 0.5, 0.1)):
            base = {"data.text_fraction": fraction, "train.seed": seed, **beams}
            r10 = {"val_r10": 0.4, "sel_val_r10": 0.4}
            cells.append(({"variant.model": "pipe-ind", **base}, {**r10, "sel_val_wer": 0.9, "beam_val_wer": wer}))
            cells.append(({"variant.model": "pipe-ind/jp", **base}, {**r10, "beam_val_bleu": bleu + seed / 10}))
    _log_sweep(client, "downsampling", cells)
    text = report("downsampling", uri, tmp_path / "no-baseline")
    assert "No speech-only baseline" in text and "--pick variant.model=speech-image/full" in text
    assert "| ours ASR WER (pipe-ind: beam_val_wer, beam 10) | 0.200 ± 0.000 (n=2) | 0.500 ± 0.000 (n=2) |" in text
    assert "| ours SLT BLEU (pipe-ind/jp: beam_val_bleu, beam 10) | 0.350 ± 0.071 (n=2) |" in text
    assert "| paper ASR WER (Table 9, val, beam 10) | 0.154 | 0.397 |" in text
    assert "| paper SLT BLEU (Table 10, val, beam 10) | 0.256 | 0.073 |" in text

    _log_sweep(
        client,
        "pipeline_vs_mtl",
        [({"variant.model": "speech-image/full", "train.seed": s}, {"sel_val_r10": 0.3 + s / 100}) for s in (0, 1, 2)]
        + [({"variant.model": "text-image/full", "train.seed": 0}, {"sel_val_r10": 0.6})],
    )
    text = report("downsampling", uri, tmp_path / "with-baseline")
    assert "| speech-image/full (no text) | 0.310 ± 0.010 (n=3) | 0.310 ± 0.010 (n=3) |" in text
    assert "The speech-only baseline (speech-image, no text) is the pipeline_vs_mtl sweep" in text
    assert "text-image/full" not in text
    assert (tmp_path / "with-baseline" / "downsampling.png").stat().st_size > 1000
