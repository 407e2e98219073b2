"""Turn a DataConfig into a corpus plus its feature stores (generating the built-in corpus and
computing features only when they are not already there)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from vgs.config import DataConfig, vgs_home
from vgs.data.features import ImageStore, SpeechStore, build_image_store, build_speech_store
from vgs.data.corpora import read_corpus
from vgs.data.records import Corpus, CorpusError


@dataclass
class Prepared:
    corpus: Corpus
    speech: SpeechStore
    images: ImageStore


def builtin_corpus_dir(cfg: DataConfig) -> Path:
    return vgs_home() / "corpora" / f"builtin-{cfg.builtin_images}img-seed{cfg.builtin_seed}"


def resolve_paths(cfg: DataConfig) -> DataConfig:
    """Absolute corpus and store paths, so that trials in other working directories find them."""
    root = Path(cfg.root).expanduser().resolve() if cfg.root else builtin_corpus_dir(cfg)
    store = Path(cfg.store).expanduser().resolve() if cfg.store else vgs_home() / "store"
    image_dir = str(Path(cfg.image_dir).expanduser().resolve()) if cfg.image_dir else ""
    return dataclasses.replace(cfg, root=str(root), store=str(store), image_dir=image_dir)


def prepare(cfg: DataConfig, quiet: bool = False) -> Prepared:
    cfg = resolve_paths(cfg)
    root = Path(cfg.root)
    if root == builtin_corpus_dir(cfg) and not (root / "corpus.json").exists():
        from vgs.data.synth import generate

        generate(root, images=cfg.builtin_images, seed=cfg.builtin_seed, quiet=quiet)
    corpus = read_corpus(root, cfg.layout, cfg.image_dir or None, skip_bad=cfg.skip_bad)
    if not corpus.images():
        raise CorpusError(f"{corpus.name} ({root}) has speech and text but no images; it cannot train a speech-image "
                          f"model. Use it as the speech/text data of the text families (data.speech_text_root)")
    speech = build_speech_store(corpus, cfg.features, cfg.store, cfg.max_frames, quiet=quiet, skip_bad=cfg.skip_bad)
    images = build_image_store(corpus, cfg.image_resize, cfg.store, quiet=quiet)
    return Prepared(corpus, speech, images)
