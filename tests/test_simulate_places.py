"""The simulated Places data path: a corpus of hard links that reads as Places, and one trial's data
cost measured on it (figures are printed by `python scripts/simulate_places.py bench`, not asserted)."""

import os

from conftest import load_script

from vgs.data.corpora import read_corpus
from vgs.data.prepare import prepare

places = load_script("simulate_places")
HELD_OUT = places.HELD_OUT


def test_a_simulated_places_corpus_links_real_files_and_a_trial_reads_it(tiny_corpus, tmp_path):
    n = 2 * HELD_OUT + 200
    root = places.build(tmp_path / f"places-{n}", n, tiny_corpus)
    corpus = read_corpus(root)
    assert corpus.name.startswith("places:")
    assert [len(corpus.split(s)) for s in ("train", "val", "test")] == [200, HELD_OUT, HELD_OUT]
    source = read_corpus(tiny_corpus)
    first = corpus.utterances[0]
    assert os.stat(first.audio).st_ino == os.stat(source.utterances[0].audio).st_ino  # a link: no new audio
    assert len({u.audio for u in corpus.utterances}) == len(corpus.utterances)  # each under its own name
    prepare(places.data_config(root, tmp_path / "store"))  # the driver's full check and build
    figures = places.trial_probe(str(root), str(tmp_path / "store"))
    assert figures["trial_second_prepare_s"] < figures["trial_first_prepare_s"]  # the worker's own copy
    assert figures["trial_rss_mib"] > 0 and figures["trial_first_batch_s"] >= figures["trial_first_prepare_s"]
    # the image paths side by side: the decoded store takes disk, the files none
    rates = places.image_path_rates(n, tmp_path, seconds=0.3)
    assert rates["decoded_images_per_s"] > 0 and rates["files_images_per_s"] > 0
    assert rates["decoded_store_mib"] > 0 and rates["files_store_mib"] == 0
