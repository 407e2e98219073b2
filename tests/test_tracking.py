"""Child-run names: what a trial searched, readable in MLflow's tables and chart legends."""
from vgs.tracking import run_label


def test_run_label_names_the_searched_values_and_the_seed():
    assert run_label({"model.speech.layers": 1, "model.latent": 256, "__trial_index__": 0}, 0) == "layers=1 latent=256 s0"
    assert run_label({"data.text_fraction": 0.0385, "variant.model": "mtl-match", "train.seed": 2}, 2) == \
        "text_fraction=0.0385 mtl-match s2"
    assert run_label({}, None) == "base"
