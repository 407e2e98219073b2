import shutil

import numpy as np
import pytest

from vgs.data.features import build_speech_store
from vgs.data.flickr8k import read_flickr8k
from vgs.data.image_store import build_image_store
from vgs.data.records import CorpusError


def test_reads_real_flickr8k_slice(flickr1d):
    root, images = flickr1d
    corpus = read_flickr8k(root, images)
    assert len(corpus.utterances) == 50
    assert len(corpus.images("train")) == 6 and len(corpus.images("val")) == 2 and len(corpus.images("test")) == 2
    u = next(x for x in corpus.utterances if x.id == "3338291921_fe7ae0c8f8_3")
    assert u.speaker == "83" and u.transcript.startswith("A dog is carrying") and u.translation


def test_features_of_real_speech(flickr1d, tmp_path):
    root, images = flickr1d
    corpus = read_flickr8k(root, images)
    store = build_speech_store(corpus, "mortazavi", tmp_path / "store", workers=1)
    import soundfile as sf

    u = corpus.utterances[0]
    seconds = sf.info(u.audio).duration
    frames = store.frames(u.id)
    assert frames.shape[1] == 40
    assert abs(frames.shape[0] - seconds / 0.0125) <= 2  # 12.5 ms hop
    chrupala = build_speech_store(corpus, "chrupala", tmp_path / "store", workers=1)
    assert chrupala.frames(u.id).shape[1] == 39
    assert abs(chrupala.frames(u.id).shape[0] - seconds / 0.010) <= 2  # 10 ms shift
    assert chrupala.path != store.path  # another preset is another store, never a silent reuse
    img = build_image_store(corpus, 48, tmp_path / "store")
    assert img.array.shape == (10, 48, 48, 3) and img.array.dtype == np.uint8


def test_store_is_reused_and_over_long_utterances_dropped(flickr1d, tmp_path):
    root, images = flickr1d
    corpus = read_flickr8k(root, images)
    first = build_speech_store(corpus, "mortazavi", tmp_path / "s", max_frames=8192, workers=1)
    mtime = first.path.stat().st_mtime_ns
    again = build_speech_store(corpus, "mortazavi", tmp_path / "s", max_frames=8192, workers=1)
    assert again.path == first.path and again.path.stat().st_mtime_ns == mtime
    longest = int(first.lengths.max())
    short = build_speech_store(corpus, "mortazavi", tmp_path / "s", max_frames=longest - 1, workers=1)
    assert short.manifest["dropped_over_max_frames"] >= 1
    assert len(short.ids) == 50 - short.manifest["dropped_over_max_frames"]


def copy_layout(root, dst):
    shutil.copytree(root, dst)
    return dst


def test_missing_corpus_folder(tmp_path):
    with pytest.raises(CorpusError, match="corpus folder not found"):
        read_flickr8k(tmp_path / "nowhere")


def test_caption_pointing_to_unknown_image(flickr1d, tmp_path):
    root, images = flickr1d
    bad = copy_layout(root, tmp_path / "c")
    capt = bad / "flickr_audio" / "wav2capt.txt"
    capt.write_text(capt.read_text() + "x_0.wav nonexistent.jpg #0\n")
    with pytest.raises(CorpusError, match=r"wav2capt.txt:51: image 'nonexistent.jpg' is not in dataset.json"):
        read_flickr8k(bad, images)


def test_missing_wav_is_named(flickr1d, tmp_path):
    root, images = flickr1d
    bad = copy_layout(root, tmp_path / "c")
    (bad / "flickr_audio" / "wavs" / "2513260012_03d33305cf_2.wav").unlink()
    with pytest.raises(CorpusError, match="audio file not found: .*2513260012_03d33305cf_2.wav"):
        read_flickr8k(bad, images)


def test_corrupt_wav_is_named_earlier_store_survives_and_finished_shards_are_reused(flickr1d, tmp_path, capfd):
    import shutil

    root, images = flickr1d
    good = read_flickr8k(root, images)
    kept = build_speech_store(good, "mortazavi", tmp_path / "store", workers=1)
    bad = copy_layout(root, tmp_path / "c")
    wav = bad / "flickr_audio" / "wavs" / "2513260012_03d33305cf_2.wav"
    wav.unlink()
    wav.write_bytes(b"RIFF\x00garbage")
    corpus = read_flickr8k(bad, images)
    with pytest.raises(CorpusError, match="corrupt or unreadable audio file .*2513260012_03d33305cf_2.wav.*kept in"):
        build_speech_store(corpus, "mortazavi", tmp_path / "store", workers=1, shard_size=10)
    files = sorted(p.name for p in (tmp_path / "store").iterdir())
    assert files == sorted(
        [kept.path.name, kept.path.with_suffix(".json").name, "speech-mortazavi.parts", "content-hashes.json"]
    )
    assert kept.frames(good.utterances[0].id).shape[1] == 40
    position = [u.id for u in corpus.utterances].index("2513260012_03d33305cf_2")
    shards = sorted((tmp_path / "store" / "speech-mortazavi.parts").iterdir())
    # the shards before the bad file's were finished (arrow + json each); nothing half-written is left
    assert len(shards) == 2 * (position // 10) and not [s for s in shards if ".tmp" in s.name]

    # restoring the file: the same content as the earlier store's, which is served as it is
    shutil.copyfile(root / "flickr_audio" / "wavs" / wav.name, wav)
    assert build_speech_store(read_flickr8k(bad, images), "mortazavi", tmp_path / "store", workers=1).path == kept.path
    # replacing it with another recording: only the shards from the bad file's on are computed
    other = next(p for p in sorted((root / "flickr_audio" / "wavs").iterdir()) if p.name != wav.name)
    shutil.copyfile(other, wav)
    capfd.readouterr()
    fixed = build_speech_store(read_flickr8k(bad, images), "mortazavi", tmp_path / "store", workers=1, shard_size=10)
    assert f"resuming: {10 * (position // 10)} of 50 utterances already featurised" in capfd.readouterr().err
    assert not (tmp_path / "store" / "speech-mortazavi.parts").exists()
    for u in good.utterances:
        expected = kept.frames(other.stem if u.id == wav.stem else u.id)
        np.testing.assert_array_equal(fixed.frames(u.id), expected)


def test_missing_images_are_reported(flickr1d, tmp_path):
    root, images = flickr1d
    with pytest.raises(CorpusError, match="no image folder"):
        read_flickr8k(root)
    victim = sorted(images.iterdir())[0]
    victim.unlink()
    with pytest.raises(CorpusError, match="1 image file.* missing.*--skip-bad"):
        read_flickr8k(root, images)
    # with skip_bad its five captions are left out and listed
    corpus = read_flickr8k(root, images, skip_bad=True)
    assert len(corpus.utterances) == 45 and victim.name not in corpus.images()
    assert len(corpus.skipped) == 5 and all("image file not found" in x["reason"] for x in corpus.skipped)


def test_skip_bad_leaves_out_corrupt_audio_with_a_report(flickr1d, tmp_path):
    import json

    root, images = flickr1d
    bad = copy_layout(root, tmp_path / "c")
    (bad / "flickr_audio" / "wavs" / "2513260012_03d33305cf_2.wav").write_bytes(b"RIFF\x00garbage")
    corpus = read_flickr8k(bad, images)
    store = build_speech_store(corpus, "mortazavi", tmp_path / "store", workers=1, skip_bad=True)
    assert "2513260012_03d33305cf_2" not in store.index and len(store.ids) == 49
    assert [s["id"] for s in store.manifest["skipped"]] == ["2513260012_03d33305cf_2"]
    report = json.loads(store.path.with_suffix(".skipped.json").read_text())
    assert "corrupt or unreadable audio file" in report["skipped"][0]["reason"]


def test_skip_bad_leaves_out_a_corrupt_image_and_its_captions(flickr1d, tmp_path):
    import json

    from vgs.config import DataConfig
    from vgs.data.image_store import build_image_store
    from vgs.data.prepare import prepare

    root, images = flickr1d
    victim = sorted(images.iterdir())[0]
    victim.write_bytes(b"\xff\xd8\xff not a jpeg")
    with pytest.raises(CorpusError, match=f"corrupt or unreadable image file .*{victim.name}.*--skip-bad"):
        build_image_store(read_flickr8k(root, images), 40, tmp_path / "s0")
    data = prepare(
        DataConfig(
            root=str(root),
            image_dir=str(images),
            store=str(tmp_path / "s"),
            image_resize=40,
            image_crop=32,
            skip_bad=True,
        )
    )
    assert victim.name not in data.images.index and len(data.images.index) == 9
    assert data.images.array.shape[0] == 9 and len(data.corpus.utterances) == 45  # its five captions went too
    report = json.loads(data.images.path.with_suffix(".skipped.json").read_text())
    assert report["skipped"][0]["id"] == victim.name


def test_a_rewritten_file_with_the_old_size_and_mtime_gets_new_features(flickr1d, tmp_path):
    """The store is keyed by content: an archive re-extracted with fixed mtimes and one re-recorded
    wav of the same size used to be served the old features."""
    import dataclasses
    import os

    root, images = flickr1d
    copy = copy_layout(root, tmp_path / "c")
    corpus = read_flickr8k(copy, images)
    first = build_speech_store(corpus, "mortazavi", tmp_path / "store", workers=1)
    wavs = sorted((copy / "flickr_audio" / "wavs").iterdir())
    a, b = wavs[0], wavs[1]
    st = os.stat(a)
    data_b = b.read_bytes()
    a.write_bytes((data_b + b"\0" * st.st_size)[: st.st_size])  # other audio, the same size ...
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns))  # ... and the same mtime
    second = build_speech_store(read_flickr8k(copy, images), "mortazavi", tmp_path / "store", workers=1)
    assert second.path != first.path
    assert not np.array_equal(second.frames(a.stem), first.frames(a.stem))
    # a different training split gives other normalisation statistics: another store too
    moved = dataclasses.replace(
        corpus,
        utterances=[dataclasses.replace(u, split="val") if i < 10 else u for i, u in enumerate(corpus.utterances)],
    )
    assert build_speech_store(moved, "mortazavi", tmp_path / "store", workers=1).path != first.path
    # unchanged files are hashed once: the cache answers the next lookup
    assert (tmp_path / "store" / "content-hashes.json").exists()


def test_metadata_naming_a_file_outside_the_corpus_is_refused(flickr1d, tmp_path):
    """Issue 26 #5: '../../../outside.wav' in wav2capt.txt was opened, hashed and featurised."""
    root, images = flickr1d
    bad = copy_layout(root, tmp_path / "c")
    capt = bad / "flickr_audio" / "wav2capt.txt"
    first = capt.read_text().splitlines()[0].split()
    capt.write_text(f"../../../outside.wav {first[1]} {first[2]}\n" + capt.read_text())
    with pytest.raises(CorpusError, match=r"wav2capt.txt:1: '../../../outside.wav' points outside the corpus folder"):
        read_flickr8k(bad, images)


def test_inside_refuses_escapes_and_absolute_names_only():
    from vgs.data.records import inside

    assert inside("a/b.wav", "x") == "a/b.wav" and inside("a/../b.wav", "x") == "a/../b.wav"
    for name in ("../x.wav", "a/../../x.wav", "/etc/passwd", ".."):
        with pytest.raises(CorpusError, match="points outside the corpus folder"):
            inside(name, "meta.json: data[0].wav")
