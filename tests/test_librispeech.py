"""LibriSpeech importer on a small fixture in its layout: FLAC files written from the built-in
corpus's real eSpeak NG recordings."""

import pytest
import soundfile as sf

from vgs.data.corpora import detect_layout, read_corpus
from vgs.data.features import build_speech_store
from vgs.data.flickr8k import read_flickr8k
from vgs.data.records import CorpusError


@pytest.fixture()
def librispeech(tiny_corpus, tmp_path):
    corpus = read_flickr8k(tiny_corpus)
    root = tmp_path / "LibriSpeech"
    subsets = {"train": "train-clean-100", "val": "dev-clean", "test": "test-clean"}
    chapters: dict = {}
    for n, u in enumerate(u for s in subsets for u in corpus.split(s)[:12]):
        spk, chap = 100 + n % 3, 7
        folder = root / subsets[u.split] / str(spk) / str(chap)
        folder.mkdir(parents=True, exist_ok=True)
        uid = f"{spk}-{chap}-{n:04d}"
        audio, rate = sf.read(u.audio)
        sf.write(folder / f"{uid}.flac", audio, rate)
        chapters.setdefault(folder, []).append(f"{uid} {u.transcript.upper()}")
    for folder, lines in chapters.items():
        (folder / f"{folder.parent.name}-{folder.name}.trans.txt").write_text("\n".join(lines) + "\n")
    return root


def test_reads_subsets_as_splits_and_featurises_flac(librispeech, tmp_path):
    assert detect_layout(librispeech) == "librispeech"
    corpus = read_corpus(librispeech)
    assert {s: len(corpus.split(s)) for s in ("train", "val", "test")} == {"train": 12, "val": 12, "test": 12}
    u = corpus.utterances[0]
    assert u.image is None and u.audio.endswith(".flac") and u.speaker == u.id.split("-")[0]
    assert u.transcript.isupper() and corpus.images() == []
    store = build_speech_store(corpus, "chrupala", tmp_path / "store", workers=1)
    assert len(store.ids) == 36 and store.frames(u.id).shape[1] == 39
    # one subset folder on its own reads as that split
    assert {x.split for x in read_corpus(librispeech / "dev-clean").utterances} == {"val"}


def test_missing_flac_is_named_or_skipped(librispeech):
    victim = sorted(librispeech.glob("train-clean-100/*/*/*.flac"))[0]
    victim.unlink()
    with pytest.raises(CorpusError, match=f"audio file not found: .*{victim.stem}.flac"):
        read_corpus(librispeech)
    corpus = read_corpus(librispeech, skip_bad=True)
    assert [s["id"] for s in corpus.skipped] == [victim.stem] and len(corpus.utterances) == 35


def test_bad_transcript_line_and_unknown_subset(librispeech, tmp_path):
    trans = next(librispeech.glob("dev-clean/*/*/*.trans.txt"))
    trans.write_text(trans.read_text() + "lonely-id\n")
    with pytest.raises(CorpusError, match=r"trans.txt:\d+: expected 'ID WORDS"):
        read_corpus(librispeech)
    odd = tmp_path / "odd"
    (librispeech / "test-clean").rename(odd / "extra-clean" if odd.mkdir() is None else odd)
    with pytest.raises(CorpusError, match="cannot tell the split of subset 'extra-clean'"):
        read_corpus(odd, layout="librispeech")


def test_librispeech_as_non_aligned_speech_text_data(librispeech, tiny_corpus, tmp_path):
    from vgs.config import apply_overrides, base_config
    from vgs.train import fit

    cfg = apply_overrides(
        base_config("cpu-tiny"),
        {
            "data.root": str(tiny_corpus),
            "data.store": str(tmp_path / "s"),
            "model.family": "three-task",
            "data.speech_text": "nonaligned",
            "data.speech_text_root": str(librispeech),
            "train.epochs": 1,
            "model.latent": 32,
            "train.test_at_end": False,
        },
    )
    summary = fit(cfg, out_dir=tmp_path / "run")
    assert summary["train_s2t_batches"] == 1  # LibriSpeech's 12 training utterances, one batch per epoch
