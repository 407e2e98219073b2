"""F30kEnt-JP translations matched to Flickr8K captions, and the text conditions built on them
(reduced English, textual downsampling) through `prepare`."""

import dataclasses
import json

import pytest

from vgs.config import DataConfig
from vgs.data.flickr8k import read_flickr8k
from vgs.data.prepare import prepare
from vgs.data.records import CorpusError
from vgs.data.translations import attach_translations, match_key, read_f30kent_jp, strip_markup


def test_markup_is_stripped_and_hyphens_do_not_matter():
    assert (
        strip_markup("[/EN#18/people A red-haired man] sits on [/EN#3/other/scene a bench] .")
        == "A red-haired man sits on a bench ."
    )
    assert (
        strip_markup("[/EN#18/people 赤毛の男性]が[/EN#3/other ベンチ]に座っている。")
        == "赤毛の男性がベンチに座っている。"
    )
    assert match_key("A red-haired man  sits on a bench .") == match_key("a red haired man sits on a bench")
    assert match_key("A man sits .") != match_key("A man stands .")


def write_f30kent(flickr1d_root, out, hyphenate=True):
    """F30kEnt-JP + Flickr30k Entities English files for flickr1d's images: the English captions
    in another order (Flickr30k's), with phrase markup, one hyphen dropped; Japanese (raw_jp) for
    the first two lines only, as in F30kEnt-JP.  Returns {(image, caption index): expected jp}."""
    meta = json.loads((flickr1d_root / "dataset.json").read_text())
    jp_dir, en_dir = out / "Sentences_jp_v2", out / "Sentences"
    jp_dir.mkdir(parents=True)
    en_dir.mkdir()
    expected = {}
    for img in meta["images"]:
        order = [4, 2, 0, 3, 1]
        en, jp = [], []
        for line_no, k in enumerate(order):
            s = img["sentences"][k]
            text = s["raw"].replace("-", " ") if hyphenate else s["raw"]
            words = text.split()
            en.append(f"[/EN#{k}/people {' '.join(words[:2])}] {' '.join(words[2:])}")
            if line_no < 2:
                jp.append(f"[/EN#{k}/people {s['raw_jp'][:3]}]{s['raw_jp'][3:]}")
                expected[(img["filename"], k)] = s["raw_jp"]
        stem = img["filename"].rsplit(".", 1)[0]
        (en_dir / f"{stem}.txt").write_text("\n".join(en) + "\n")
        (jp_dir / f"{stem}.txt").write_text("\n".join(jp) + "\n")
    return jp_dir, expected


def test_translations_match_by_text_and_unmatched_captions_keep_their_place(flickr1d, tmp_path):
    root, images = flickr1d
    jp_dir, expected = write_f30kent(root, tmp_path / "f30k")
    corpus = read_flickr8k(root, images)
    table = read_f30kent_jp(jp_dir)  # English found beside it
    with_jp, matched = attach_translations(corpus, table)
    assert matched == len(expected) == 20
    assert [u.id for u in with_jp.utterances] == [u.id for u in corpus.utterances]
    for u in with_jp.utterances:
        k = int(u.id.rsplit("_", 1)[1])
        assert u.translation == expected.get((u.image, k))


def test_translation_folder_errors(tmp_path):
    with pytest.raises(CorpusError, match="translation folder not found"):
        read_f30kent_jp(tmp_path / "nope")
    (tmp_path / "jp").mkdir()
    (tmp_path / "jp" / "1.txt").write_text("x\n")
    with pytest.raises(CorpusError, match="no English Flickr30k Entities sentences"):
        read_f30kent_jp(tmp_path / "jp")
    (tmp_path / "Sentences").mkdir()
    with pytest.raises(CorpusError, match="1.txt has no English counterpart"):
        read_f30kent_jp(tmp_path / "jp")


def test_translated_only_keeps_translated_training_captions(flickr1d, tmp_path):
    """Higy et al. 2020's reduced English dataset: training on the captions that have a translation
    (speech, images and text); validation and test stay whole."""
    root, images = flickr1d
    jp_dir, expected = write_f30kent(root, tmp_path / "f30k")
    cfg = DataConfig(
        root=str(root),
        image_dir=str(images),
        translations=str(jp_dir),
        translated_only=True,
        store=str(tmp_path / "store"),
        image_resize=40,
        image_crop=32,
    )
    data = prepare(cfg)
    train = {u.id for u in data.corpus.split("train")}
    assert train == {
        f"{name.rsplit('.', 1)[0]}_{k}"
        for (name, k) in expected
        if name in {u.image for u in data.corpus.split("train")}
    }
    assert len(train) == 12 and len(data.corpus.split("val")) == 10 and len(data.corpus.split("test")) == 10


def test_textual_downsampling_is_nested_and_sized_by_speech(tiny_corpus, tmp_path):
    base = DataConfig(root=str(tiny_corpus), store=str(tmp_path / "store"), image_resize=40, image_crop=32)
    full = prepare(base)
    assert full.text_ids is None
    quarter = prepare(dataclasses.replace(base, text_fraction=0.25)).text_ids
    tenth = prepare(dataclasses.replace(base, text_fraction=0.1)).text_ids
    assert tenth < quarter and 0.2 < len(quarter) / len(full.corpus.split("train")) < 0.3
    half_hour = prepare(dataclasses.replace(base, text_hours=0.5))
    seconds = sum(half_hour.speech.lengths[half_hour.speech.index[u]] for u in half_hour.text_ids) * 200 / 16000
    assert 1800 <= seconds < 1800 + 15
    with pytest.raises(CorpusError, match="data.text_hours/text_fraction: asked for 100.00 h"):
        prepare(dataclasses.replace(base, text_hours=100))
