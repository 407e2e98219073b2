"""A trained run in use: retrieval from a recording or an image file, embeddings to Parquet and
the Model Registry round trip, on a model trained here (one epoch on the tiny corpus)."""

import numpy as np
import pytest
import torch

from vgs.config import ConfigError, apply_overrides, base_config
from vgs.data.flickr8k import read_flickr8k


@pytest.fixture(scope="module")
def trained_run(tiny_corpus, tmp_path_factory):
    from vgs.train import fit

    out = tmp_path_factory.mktemp("run")
    cfg = apply_overrides(base_config("cpu-tiny"), {"data.root": str(tiny_corpus), "train.epochs": 1})
    fit(cfg, out_dir=out)
    return out / "best.pt"


def test_a_wav_query_ranks_as_evaluation_does(trained_run, tiny_corpus):
    from vgs.results.retrieve import corpus_embeddings, embed_wav, load_trained, retrieve_images

    t = load_trained(str(trained_run))
    rows = corpus_embeddings(t, ["test"])
    speech = [i for i, k in enumerate(rows["kind"]) if k == "speech"]
    images = [i for i, k in enumerate(rows["kind"]) if k == "image"]
    utt = read_flickr8k(tiny_corpus).split("test")[0]
    # the recording featurised afresh embeds as the evaluation's store frames did
    stored = rows["embedding"][next(i for i in speech if rows["id"][i] == utt.id)]
    np.testing.assert_allclose(embed_wav(t, str(utt.audio)), stored, atol=1e-4)
    top = retrieve_images(t, str(utt.audio), None, 5, ["test"])
    scores = np.stack([rows["embedding"][i] for i in images]) @ stored
    assert [name for name, _ in top] == [rows["id"][images[i]] for i in np.argsort(-scores)[:5]]
    assert top[0][1] == pytest.approx(float(scores.max()), abs=1e-4)


def test_an_image_file_finds_captions_and_a_folder_of_images_is_ranked(trained_run, tiny_corpus, tmp_path):
    from vgs.results.retrieve import corpus_embeddings, load_trained, retrieve_captions, retrieve_images

    t = load_trained(str(trained_run))
    corpus = read_flickr8k(tiny_corpus)
    utt = corpus.split("test")[0]
    image_file = corpus.image_dir / utt.image
    rows = corpus_embeddings(t, ["test"])
    stored = rows["embedding"][rows["id"].index(utt.image)]
    captions = retrieve_captions(t, str(image_file), 3, ["test"])
    speech = [i for i, k in enumerate(rows["kind"]) if k == "speech"]
    best = max(speech, key=lambda i: float(rows["embedding"][i] @ stored))
    assert captions[0][0] == rows["id"][best] and captions[0][1] == rows["transcript"][best]
    folder = tmp_path / "imgs"
    folder.mkdir()
    for u in corpus.split("test")[:4]:
        (folder / u.image).write_bytes((corpus.image_dir / u.image).read_bytes())
    ranked = retrieve_images(t, str(utt.audio), str(folder), 10, ["test"])
    assert len(ranked) == len(list(folder.iterdir())) and all(s <= ranked[0][1] for _, s in ranked)


def test_embed_writes_every_caption_and_image_to_parquet(trained_run, tmp_path, capsys):
    import pyarrow.parquet as pq

    from vgs.cli import main

    out = tmp_path / "emb.parquet"
    assert main(["embed", "--run", str(trained_run), "--out", str(out), "--splits", "val,test"]) == 0
    stdout = capsys.readouterr().out
    table = pq.read_table(out).to_pydict()
    assert set(table) == {"kind", "id", "split", "image", "transcript", "embedding"}
    ck = torch.load(trained_run, weights_only=True)
    assert {len(e) for e in table["embedding"]} == {ck["config"]["model"]["latent"]}
    assert set(table["split"]) == {"val", "test"} and table["kind"].count("image") == 40 + 20
    assert f"{table['kind'].count('speech')} speech and 60 image embeddings" in stdout


def test_registered_best_trial_loads_back_by_name(trained_run, tiny_corpus, tmp_path, capsys, monkeypatch):
    import tempfile

    from mlflow.tracking import MlflowClient

    from vgs.results.retrieve import embed_wav, load_trained, register_best

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("vgs-x", artifact_location=(tmp_path / "art").as_uri())
    parent = client.create_run(exp, tags={"vgs.kind": "sweep"})
    child = client.create_run(exp, tags={"mlflow.parentRunId": parent.info.run_id, "vgs.trial_id": "t1"})
    client.log_artifact(child.info.run_id, str(trained_run), artifact_path="checkpoint")
    with pytest.raises(ConfigError, match="names no best trial"):
        register_best(client, parent.info.run_id, "vgs-x-best")
    client.set_tag(parent.info.run_id, "vgs.best_run_id", child.info.run_id)
    assert register_best(client, parent.info.run_id, "vgs-x-best") == "vgs-x-best version 1"
    utt = read_flickr8k(tiny_corpus).split("test")[0]
    local = embed_wav(load_trained(str(trained_run)), str(utt.audio))
    # issue 36 #13: each load by run id or name left a copy of best.pt in TMPDIR; now one download
    # per checkpoint, kept in VGS_HOME/downloads
    monkeypatch.setenv("VGS_HOME", str(tmp_path / "home"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    for ref in ("models:/vgs-x-best", "models:/vgs-x-best/1", child.info.run_id) * 2:
        np.testing.assert_allclose(embed_wav(load_trained(ref, uri), str(utt.audio)), local, atol=1e-6)
    assert not list((tmp_path / "tmp").rglob("*.pt"))
    assert len(list((tmp_path / "home" / "downloads").rglob("best.pt"))) == 2  # the version's, the run's
    with pytest.raises(ConfigError, match="no registered model 'nope'"):
        load_trained("models:/nope", uri)
    from vgs.cli import main

    capsys.readouterr()
    assert (
        main(["retrieve", "--run", "models:/vgs-x-best", "--tracking-uri", uri, "--wav", str(utt.audio), "-k", "3"])
        == 0
    )
    assert len(capsys.readouterr().out.strip().splitlines()) == 3


def test_embed_out_is_checked_before_any_work(tmp_path, capsys):
    """Issue 36 #16: an existing folder, or one that cannot be made, gave a traceback after all the
    work (and left a .tmp file)."""
    from vgs.cli import main

    (tmp_path / "afile").write_text("x")
    for out, message in (
        (tmp_path, f"--out {tmp_path} is a folder; name the Parquet file to write"),
        (tmp_path / "afile" / "e.parquet", f"its folder {tmp_path / 'afile'} cannot be made"),
    ):
        assert main(["embed", "--run", "no-such-run", "--out", str(out)]) == 2
        assert message in capsys.readouterr().err


def test_bad_runs_are_named(tmp_path):
    from vgs.results.retrieve import load_trained

    with pytest.raises(ConfigError, match="holds no best.pt"):
        load_trained(str(tmp_path))
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(ConfigError, match="not a vgs checkpoint"):
        load_trained(str(tmp_path / "junk.pt"))
    with pytest.raises(ConfigError, match="MLflow"):
        load_trained("0123456789abcdef", f"sqlite:///{tmp_path / 'm.db'}")


def test_a_query_of_nan_samples_is_refused_naming_the_file(trained_run, tiny_corpus, tmp_path, capsys):
    """Issue 36 #3: a NaN query printed a ranking of nan scores and exited 0."""
    import soundfile as sf

    from vgs.cli import main

    audio, rate = sf.read(read_flickr8k(tiny_corpus).split("test")[0].audio, dtype="float32")
    audio[50:60] = np.nan
    sf.write(tmp_path / "q.wav", audio, rate, subtype="FLOAT")
    assert main(["retrieve", "--run", str(trained_run), "--wav", str(tmp_path / "q.wav")]) == 2
    assert f"{tmp_path / 'q.wav'}: 10 of its {len(audio)} samples are NaN or infinite" in capsys.readouterr().err


def test_a_query_recording_shorter_than_one_window_is_refused_and_a_long_one_noted():
    """Issue 26 #10: 10 samples gave a torch padding traceback; ten minutes passed silently at 6x the
    training cap."""
    from vgs.data.featurisers import check_recording_length
    from vgs.data.records import CorpusError

    with pytest.raises(CorpusError, match=r"q\.wav: 10 samples at 16000 Hz is shorter than one analysis window"):
        check_recording_length("q.wav", 10, "mortazavi", 8192)
    assert check_recording_length("q.wav", 16000, "mortazavi", 8192) is None
    note = check_recording_length("q.wav", 600 * 16000, "mortazavi", 8192)
    assert "600.0 s is 48001 frames, 5.9x data.max_frames (8192)" in note


def test_a_checkpoints_paths_never_decide_where_retrieve_writes(tmp_path):
    """Issue 26 #6: best.pt's config carries the trainer's absolute data.store and data.root; a store
    was written where it said.  Now the local VGS_HOME decides, and a missing corpus is named."""
    import torch

    from vgs.config import apply_overrides, base_config, to_dict
    from vgs.config.schema import ConfigError
    from vgs.results.retrieve import load_trained

    elsewhere = tmp_path / "elsewhere"
    cfg = apply_overrides(
        base_config("cpu-tiny"),
        {"data.store": str(elsewhere / "store"), "data.root": str(tmp_path / "trainer" / "corpus")},
    )
    ck = tmp_path / "best.pt"
    torch.save({"model": {}, "config": to_dict(cfg)}, ck)
    with pytest.raises(
        ConfigError, match=r"trained on the corpus .*trainer/corpus, which is not on this machine; pass --data"
    ):
        load_trained(str(ck))
    assert not elsewhere.exists()
