"""Places and SpokenCOCO importers, on small fixtures written from the built-in corpus's real
eSpeak NG recordings and images."""

import json
import os

import pytest
from conftest import kill_part_way

from vgs.config import apply_overrides, base_config
from vgs.data.corpora import detect_layout, read_corpus
from vgs.data.records import CorpusError
from vgs.train import fit


def test_places_layout(places):
    assert detect_layout(places) == "places"
    corpus = read_corpus(places)
    assert len(corpus.utterances) == 1500
    assert {u.split for u in corpus.utterances} == {"train", "val", "test"}
    assert corpus.utterances[0].image.startswith("s/scene/") and corpus.utterances[0].transcript


def test_spokencoco_layout_with_karpathy_split(spokencoco):
    root, images = spokencoco
    assert detect_layout(root) == "spokencoco"
    corpus = read_corpus(root, image_dir=str(images))
    assert len(corpus.utterances) == 1500
    assert {u.split for u in corpus.utterances} == {"train", "val", "test"}
    assert corpus.utterances[0].image.startswith("train2014/")


@pytest.mark.parametrize("layout", ["places", "spokencoco"])
def test_each_layout_trains_end_to_end(layout, places, spokencoco, tmp_path):
    root, image_dir = (places, "") if layout == "places" else (spokencoco[0], str(spokencoco[1]))
    cfg = apply_overrides(
        base_config("cpu-tiny"),
        {"data.root": str(root), "data.image_dir": image_dir, "data.store": str(tmp_path / "store"), "train.epochs": 1},
    )
    summary = fit(cfg, out_dir=tmp_path / "run")
    assert 0.0 <= summary["val_s2i_r10"] <= 1.0 and summary["epoch"] == 1


def test_places_errors_name_the_file(places):
    meta = places / "dev_seen_2020.json"
    data = json.loads(meta.read_text())
    data["data"].append(dict(data["data"][0]))
    meta.write_text(json.dumps(data))
    with pytest.raises(CorpusError, match="dev_seen_2020.json: data\\[.*\\]: duplicate uttid"):
        read_corpus(places)
    data["data"][-1] = {**data["data"][0], "uttid": "new", "wav": "wavs/nowhere.wav"}
    meta.write_text(json.dumps(data))
    with pytest.raises(CorpusError, match="audio file not found: .*nowhere.wav.*--skip-bad"):
        read_corpus(places)
    skipped = read_corpus(places, skip_bad=True)
    assert [x["id"] for x in skipped.skipped] == ["new"] and len(skipped.utterances) == 1500


def test_image_in_two_splits_is_refused(places):
    meta = places / "test_seen_2020.json"
    data = json.loads(meta.read_text())
    train_image = json.loads((places / "train_2020.json").read_text())["data"][0]["image"]
    data["data"][0]["image"] = train_image
    meta.write_text(json.dumps(data))
    with pytest.raises(
        CorpusError, match=f"image '{train_image}' is in both the (test and the train|train and the test) split"
    ):
        read_corpus(places)


def test_skipped_items_reach_the_store_report(places, tmp_path):
    from vgs.data.features import build_speech_store

    victim = sorted((places / "audio" / "wavs").iterdir())[5]
    victim.unlink()
    corpus = read_corpus(places, skip_bad=True)
    store = build_speech_store(corpus, "mortazavi", tmp_path / "store", skip_bad=True)
    report = json.loads(store.path.with_suffix(".skipped.json").read_text())
    assert [x["id"] for x in report["skipped"]] == [victim.stem] and "audio file not found" in report["skipped"][0][
        "reason"
    ]
    assert len(store.ids) == 1499


def test_a_decompression_bomb_image_is_named_and_left_out_with_skip_bad(places, tmp_path, monkeypatch):
    """Issue 36 #12: a decompression-bomb PNG gave a raw traceback without the file name, and
    --skip-bad did not skip it.  PIL's pixel limit is lowered here so that a small PNG is a bomb."""
    from PIL import Image

    from vgs.data.image_store import build_image_store

    corpus = read_corpus(places)
    victim = corpus.image_dir / corpus.images()[3]
    victim.unlink()  # a symlink into the corpus: an image of our own in its place
    Image.new("L", (400, 300)).save(victim, format="PNG")
    for limit in (60_000, 100_000):  # over twice the limit PIL refuses; between, it only warns
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
        with pytest.raises(CorpusError, match=f"image file {victim} is too large to decode.*--skip-bad"):
            build_image_store(corpus, 32, tmp_path / f"store{limit}")
        store = build_image_store(corpus, 32, tmp_path / f"store{limit}", skip_bad=True)
        assert victim.name not in store.index and len(store.index) == len(corpus.images()) - 1


def test_a_recording_of_nan_samples_is_named_and_left_out_with_skip_bad(places, tmp_path):
    import numpy as np
    import soundfile as sf

    from vgs.data.features import build_speech_store

    victim = sorted((places / "audio" / "wavs").iterdir())[7]
    audio, rate = sf.read(victim, dtype="float32")
    audio[100:200] = np.nan
    victim.unlink()  # a symlink into the corpus: write a file of our own in its place
    sf.write(victim, audio, rate, subtype="FLOAT")
    corpus = read_corpus(places)
    with pytest.raises(CorpusError, match=f"{victim}: its features hold NaN or infinite values"):
        build_speech_store(corpus, "mortazavi", tmp_path / "store", workers=1)
    store = build_speech_store(corpus, "mortazavi", tmp_path / "store", workers=1, skip_bad=True)
    assert victim.stem not in store.index and len(store.ids) == 1499
    assert np.isfinite(store.mean).all() and np.isfinite(store.std).all()


def test_interrupted_featurisation_resumes_where_it_stopped(tiny_corpus, tmp_path):
    """Kill the featurising process mid-way (SIGKILL, nothing gets to clean up); the rerun
    computes only the missing shards and the result equals an uninterrupted build."""
    import numpy as np

    from vgs.data.features import build_speech_store
    from vgs.data.featurisers import load_audio, mfcc

    store = tmp_path / "store"
    code = (
        "import sys; from vgs.data.corpora import read_corpus; from vgs.data.features import build_speech_store; "
        f"build_speech_store(read_corpus({str(tiny_corpus)!r}), 'mortazavi', {str(store)!r}, workers=1, "
        "shard_size=50)"
    )
    parts = store / "speech-mortazavi.parts"
    finished = kill_part_way(code, parts, at_least=4, timeout=120)
    assert 4 <= finished < 30, "the build should have been interrupted part-way"
    corpus = read_corpus(tiny_corpus)
    resumed = build_speech_store(corpus, "mortazavi", store, workers=1, shard_size=50)
    assert not parts.exists()
    fresh = build_speech_store(corpus, "mortazavi", tmp_path / "fresh", workers=2, shard_size=50)
    assert resumed.ids == fresh.ids
    for uid in resumed.ids[::97]:
        np.testing.assert_array_equal(resumed.frames(uid), fresh.frames(uid))
    np.testing.assert_allclose(resumed.std, fresh.std, rtol=1e-6)
    # the merged store keeps one chunk per shard, read in place: no frame is copied into memory
    assert len(fresh._values) > 1 and not any(v.flags.owndata for v in fresh._values)
    uid = fresh.ids[-1]
    expected = mfcc(load_audio(next(u.audio for u in corpus.utterances if u.id == uid)), "mortazavi")
    np.testing.assert_allclose(fresh.frames(uid), expected, rtol=1e-5, atol=1e-5)
    assert fresh.lengths[fresh.index[uid]] == len(expected)


def test_unknown_layout_and_unrecognised_folder(tmp_path):
    with pytest.raises(CorpusError, match="cannot tell the layout"):
        read_corpus(tmp_path)
    with pytest.raises(CorpusError, match="unknown data.layout 'timit'"):
        read_corpus(tmp_path, layout="timit")


def test_featurisation_benchmark_prints_throughput(tiny_corpus):
    import subprocess
    import sys

    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "vgs.tools.bench_features",
            "--data",
            str(tiny_corpus),
            "--workers",
            "1",
            "--limit",
            "80",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = json.loads(r.stdout)
    assert rows[0]["utterances"] == 80 and rows[0]["utt_per_s"] > 0 and rows[0]["utt_per_s_per_worker"] > 0


def test_older_places_release_uses_val_json_as_the_test_set(places, capfd):
    """train.json + val.json only: val.json is the 1000-pair test set; validation is held out of
    train by image, the same on every run."""
    data = {
        n: json.loads((places / n).read_text())
        for n in ("train_2020.json", "dev_seen_2020.json", "test_seen_2020.json")
    }
    train = {**data["train_2020.json"], "data": data["train_2020.json"]["data"] + data["dev_seen_2020.json"]["data"]}
    for n in data:
        (places / n).unlink()
    (places / "train.json").write_text(json.dumps(train))
    (places / "val.json").write_text(json.dumps(data["test_seen_2020.json"]))
    corpus = read_corpus(places)
    assert "val.json is used as the test set" in capfd.readouterr().err
    assert {u.id for u in corpus.split("test")} == {r["uttid"] for r in data["test_seen_2020.json"]["data"]}
    val = corpus.split("val")
    assert 0 < len(val) <= 150 and len(corpus.split("train")) + len(val) == len(train["data"])
    assert [u.id for u in read_corpus(places).split("val")] == [u.id for u in val]


def test_prepare_command_featurises_ahead_and_names_bad_input(places, tmp_path):
    import subprocess
    import sys

    env = {**os.environ, "VGS_HOME": str(tmp_path / "home")}
    ok = subprocess.run(
        [sys.executable, "-m", "vgs.cli", "prepare", "--data", str(places), "--base", "cpu-small"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "{'train': 1200, 'val': 200, 'test': 100} utterances, 300 images" in ok.stdout
    assert len(list((tmp_path / "home" / "store").glob("speech-mortazavi-*.arrow"))) == 1
    bad = subprocess.run(
        [sys.executable, "-m", "vgs.data.prepare", "--data", str(tmp_path / "nowhere")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad.returncode == 2 and "corpus folder not found" in bad.stderr


def test_store_sizes_are_known_before_building_and_a_disk_too_small_is_refused(tiny_corpus, tmp_path):
    """The MFCC estimate (from 200 recordings' headers) is within 20% of the store built; an image
    store the disk cannot hold is refused before a byte is written, naming the figures."""
    from vgs.data.features import build_speech_store
    from vgs.data.featurisers import PRESETS, SAMPLE_RATE, preset_dim
    from vgs.data.image_store import build_image_store
    from vgs.data.store_size import image_store_bytes, speech_store_bytes

    corpus = read_corpus(tiny_corpus)
    estimate = speech_store_bytes(corpus.utterances, preset_dim("mortazavi"), PRESETS["mortazavi"]["hop"], SAMPLE_RATE)
    built = build_speech_store(corpus, "mortazavi", tmp_path / "store", workers=1)
    assert abs(estimate / built.path.stat().st_size - 1) < 0.2, (estimate, built.path.stat().st_size)
    images = build_image_store(corpus, 32, tmp_path / "store")
    assert abs(image_store_bytes(len(images.index), 32) - images.path.stat().st_size) <= 128
    with pytest.raises(CorpusError, match=r"the image store of .* at 60000x60000 px.* needs about .* GiB in .* free"):
        build_image_store(corpus, 60000, tmp_path / "store")  # about 860 TB for the tiny corpus's images
    assert not list((tmp_path / "store").glob("images-60000-*"))


def test_a_trial_takes_the_drivers_check_and_reads_no_per_file_data(tiny_corpus, tmp_path):
    """prepare(verified=True), as every trial calls it, opens what the last full check found without
    touching a source file: with a recording moved away it still opens the same stores, while the
    full check (the next sweep's driver) names the missing file."""
    import dataclasses
    import shutil

    import numpy as np

    from vgs.data.prepare import prepare, verified_record

    cfg = dataclasses.replace(base_config("cpu-tiny").data, root=str(tiny_corpus), store=str(tmp_path / "store"))
    full = prepare(cfg)
    assert verified_record(dataclasses.replace(cfg, root=str(tiny_corpus.resolve()))).exists()
    audio = full.corpus.split("train")[0].audio
    shutil.move(audio, tmp_path / "moved.wav")
    try:
        trusted = prepare(cfg, verified=True)
        assert trusted.speech.path == full.speech.path and trusted.images.path == full.images.path
        assert [u.id for u in trusted.corpus.utterances] == [u.id for u in full.corpus.utterances]
        uid = full.speech.ids[5]
        np.testing.assert_array_equal(trusted.speech.frames(uid), full.speech.frames(uid))
        with pytest.raises(CorpusError, match="moved|not found"):
            prepare(cfg)
    finally:
        shutil.move(tmp_path / "moved.wav", audio)


def test_a_trial_never_unpickles_the_stores_record(tiny_corpus, tmp_path):
    """Issue 36 #2: trials unpickled <store>/verified/<key>.pkl, so whoever could write the store
    (shared NFS on a cluster) ran code in every trial.  The record is JSON now; a pickle planted in
    its place runs nothing, and the trial checks the data in full instead."""
    import dataclasses
    import json
    import pickle

    from vgs.data.prepare import prepare, verified_record

    cfg = dataclasses.replace(base_config("cpu-tiny").data, root=str(tiny_corpus), store=str(tmp_path / "store"))
    full = prepare(cfg)
    record = verified_record(dataclasses.replace(cfg, root=str(tiny_corpus.resolve())))
    assert record.suffix == ".json" and json.loads(record.read_text())["corpus"]["name"] == full.corpus.name
    trusted = prepare(cfg, verified=True)
    assert trusted.corpus == full.corpus and trusted.text_ids == full.text_ids
    assert trusted.speech.manifest == full.speech.manifest and trusted.images.manifest == full.images.manifest

    class Payload:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    for planted in (record, record.with_suffix(".pkl")):
        planted.write_bytes(pickle.dumps(Payload()))
    again = prepare(cfg, verified=True)
    assert not (tmp_path / "pwned").exists() and again.corpus == full.corpus
    assert json.loads(record.read_text())["version"] == 1  # the full check wrote a good record back


def test_images_decoded_per_batch_equal_the_decoded_store(tiny_corpus, tmp_path):
    """data.image_store=files writes nothing and gives the same pixels as the decoded store, in the
    same batches; it survives the pickling a trial's verified data goes through."""
    import dataclasses
    import pickle

    import numpy as np

    from vgs.data.batching import PairSplit
    from vgs.data.prepare import prepare

    base = dataclasses.replace(
        base_config("cpu-tiny").data, root=str(tiny_corpus), store=str(tmp_path / "store"), image_resize=40
    )
    decoded = prepare(base)
    files = prepare(dataclasses.replace(base, image_store="files"))
    assert files.images.path == files.corpus.image_dir  # read in place: no image store written
    assert files.images.array.shape == decoded.images.array.shape
    np.testing.assert_array_equal(files.images.array[[3, 0, 7]], decoded.images.array[[3, 0, 7]])
    again = pickle.loads(pickle.dumps(files))
    a, b = PairSplit(decoded, "train"), PairSplit(again, "train")
    idx = a.epoch_batches(np.random.default_rng(0), 8)[0]
    pa, pb = a.batch(idx, 32, np.random.default_rng(1)), b.batch(idx, 32, np.random.default_rng(1))
    assert np.array_equal(pa["pixels"].numpy(), pb["pixels"].numpy())
    from vgs.config import ConfigError, check_runnable

    with pytest.raises(ConfigError, match="data.image_store must be decoded or files, got 'jpeg'"):
        check_runnable(apply_overrides(base_config("cpu-tiny"), {"data.image_store": "jpeg"}))


def test_the_papers_batches_may_pair_captions_of_one_image_and_cover_the_same_captions(tiny_corpus, tmp_path):
    """train.negatives=batch draws the captions in one shuffled order, as the papers do; the default
    deals them in rounds so that no batch holds two captions of one image."""
    import dataclasses

    import numpy as np

    from vgs.data.batching import PairSplit
    from vgs.data.prepare import prepare

    data = prepare(dataclasses.replace(base_config("cpu-tiny").data, root=str(tiny_corpus), store=str(tmp_path / "s")))
    split = PairSplit(data, "train")

    def images_per_batch(any_images: bool) -> tuple[list[tuple[int, int]], np.ndarray]:
        batches = split.epoch_batches(np.random.default_rng(0), 16, any_images=any_images)
        return [(len(b), len(set(split.image_of_caption[b]))) for b in batches], np.sort(np.concatenate(batches))

    rounds, dealt = images_per_batch(False)
    papers, drawn = images_per_batch(True)
    assert all(n == distinct for n, distinct in rounds)
    assert any(distinct < n for n, distinct in papers)  # some batch pairs two captions of one image
    assert np.array_equal(dealt, drawn) and len(drawn) == len(split)
