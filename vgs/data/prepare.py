"""Turn a DataConfig into a corpus plus its feature stores (generating the built-in corpus and
computing features only when they are not already there)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from vgs.cli_options import add_base, add_data, add_overrides, add_skip_bad
from vgs.config import ConfigError, DataConfig, config_from_cli, vgs_home
from vgs.data.corpora import read_corpus
from vgs.data.features import SpeechStore, build_speech_store
from vgs.data.featurisers import PRESETS, SAMPLE_RATE, Featuriser, featuriser_of
from vgs.data.image_store import ImageStore, build_feature_image_store, build_image_store, file_image_store
from vgs.data.locking import exclusive
from vgs.data.records import Corpus, CorpusError, Utterance
from vgs.data.synth import DEFAULT_SNR, GENERATOR_VERSION, generate, parse_snr, split_sizes
from vgs.data.text_subsets import reduced_english, text_subset
from vgs.data.translations import attach_translations, read_f30kent_jp
from vgs.log import get_logger, report_error

log = get_logger(__name__)
BUILTIN = "builtin"  # data.root (and data.speech_text_root): the built-in corpus, asked for by name


@dataclass
class Prepared:
    corpus: Corpus
    speech: SpeechStore
    images: ImageStore
    # Training captions whose text (transcript/translation) text-supervised objectives may use;
    # None: all of them (no textual downsampling).
    text_ids: set[str] | None = None
    speech_norm: str = "corpus"  # data.speech_norm: how batches standardise the MFCCs


def builtin_split(cfg: DataConfig) -> tuple[int, int, int]:
    """(train, val, test) images of the built-in corpus of `cfg`; a ConfigError if they do not fit."""

    try:
        return split_sizes(cfg.builtin_images, cfg.builtin_val or None, cfg.builtin_test or None)
    except ValueError as e:
        raise ConfigError(f"data.builtin_images/builtin_val/builtin_test: {e}") from e


def builtin_corpus_dir(cfg: DataConfig) -> Path:
    """Named by everything that makes it: generator version, size, seed and split."""

    train, val, test = builtin_split(cfg)
    snr = builtin_snr(cfg)
    noise = "" if snr == DEFAULT_SNR else f"-snr{snr[0]:g}-{snr[1]:g}"
    return (
        vgs_home()
        / "corpora"
        / (
            f"builtin-v{GENERATOR_VERSION}-{cfg.builtin_images}img-seed{cfg.builtin_seed}"
            f"-split{train}-{val}-{test}{noise}"
        )
    )


def builtin_snr(cfg: DataConfig) -> tuple[float, float]:
    """data.builtin_snr as a (low, high) dB range; a ConfigError naming the key if it is not one."""

    try:
        return parse_snr(cfg.builtin_snr)
    except ValueError as e:
        raise ConfigError(f"data.builtin_snr: {e}") from e


def ensure_builtin(cfg: DataConfig) -> Path:
    """The built-in corpus of `cfg` (builtin_images, builtin_seed, split), generated if it is not there."""
    root = builtin_corpus_dir(cfg)
    if (root / "corpus.json").exists():
        return root
    with exclusive(root.with_name(f".{root.name}.lock"), f"the built-in corpus {root.name}"):
        if not (root / "corpus.json").exists():  # another process may have made it while we waited
            _, val, test = builtin_split(cfg)
            generate(
                root,
                images=cfg.builtin_images,
                seed=cfg.builtin_seed,
                val_images=val,
                test_images=test,
                snr=builtin_snr(cfg),
            )
    return root


def absolute_paths(cfg: DataConfig) -> DataConfig:
    """The user's paths made absolute (trials run in other working directories).  An empty root or
    `builtin` (the built-in corpus) and an empty store stay so: they follow from data.builtin_* and
    VGS_HOME, which a trial's own overrides may change."""

    def absolute(path: str) -> str:
        return str(Path(path).expanduser().resolve()) if path else ""

    keep = lambda path: path if path == BUILTIN else absolute(path)  # `builtin` names no folder

    return dataclasses.replace(
        cfg,
        root=keep(cfg.root),
        store=absolute(cfg.store),
        image_dir=absolute(cfg.image_dir),
        image_features=absolute(cfg.image_features),
        translations=absolute(cfg.translations),
        translations_en=absolute(cfg.translations_en),
        speech_text_root=keep(cfg.speech_text_root),
    )


def resolve_paths(cfg: DataConfig) -> DataConfig:
    """Absolute corpus and store paths: the built-in corpus's folder when no root is given, and
    <VGS_HOME>/store when no store is."""
    cfg = absolute_paths(cfg)
    root = cfg.root if cfg.root not in ("", BUILTIN) else str(builtin_corpus_dir(cfg))
    return dataclasses.replace(cfg, root=root, store=cfg.store or str(vgs_home() / "store"))


def store_lock(cfg: DataConfig):
    """One builder at a time per feature-store folder (the stores themselves are keyed by content
    and written under temporary names; this keeps two builders from sharing a temporary shard)."""
    return exclusive(Path(cfg.store) / ".build.lock", f"features in {cfg.store}")


def verified_record(cfg: DataConfig, speech: Featuriser | None = None) -> Path:
    """Where a full check of `cfg`'s corpus and stores (speech: its featuriser, by default the MFCCs
    of data.features) leaves its result for the trials that follow: JSON, never a pickle (a store
    on shared NFS is writable by others, and a planted pickle would run code in every trial)."""
    what = {**dataclasses.asdict(cfg), "speech": speech_featuriser(cfg, speech).params()}
    key = hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]
    return Path(cfg.store) / "verified" / f"{key}.json"


RECORD_VERSION = 1
_UTTERANCE_FIELDS = [f.name for f in dataclasses.fields(Utterance)]


def prepared_record(prepared: Prepared) -> dict:
    """`prepared` as plain JSON data: the corpus's utterances column by column, each store as its
    file and manifest (the frames stay on disk)."""
    corpus = prepared.corpus
    return {
        "version": RECORD_VERSION,
        "corpus": {
            "name": corpus.name,
            "root": str(corpus.root),
            "image_dir": None if corpus.image_dir is None else str(corpus.image_dir),
            "utterances": {f: [getattr(u, f) for u in corpus.utterances] for f in _UTTERANCE_FIELDS},
            "skipped": corpus.skipped,
        },
        "speech": {"path": str(prepared.speech.path), "manifest": prepared.speech.manifest},
        "images": {"path": str(prepared.images.path), "manifest": prepared.images.manifest},
        "text_ids": None if prepared.text_ids is None else sorted(prepared.text_ids),
        "speech_norm": prepared.speech_norm,
    }


def prepared_from_record(record: dict) -> Prepared:
    """The inverse of prepared_record (the stores are opened again); a ValueError for another layout."""
    if not isinstance(record, dict) or record.get("version") != RECORD_VERSION:
        raise ValueError(f"not a version {RECORD_VERSION} record")
    c = record["corpus"]
    columns = [c["utterances"][f] for f in _UTTERANCE_FIELDS]
    corpus = Corpus(
        c["name"],
        Path(c["root"]),
        None if c["image_dir"] is None else Path(c["image_dir"]),
        [Utterance(*row) for row in zip(*columns, strict=True)],
        c["skipped"],
    )
    text_ids = record["text_ids"]
    return Prepared(
        corpus,
        SpeechStore(Path(record["speech"]["path"]), record["speech"]["manifest"]),
        ImageStore(Path(record["images"]["path"]), record["images"]["manifest"]),
        None if text_ids is None else set(text_ids),
        record["speech_norm"],
    )


def speech_featuriser(cfg: DataConfig, speech: Featuriser | None = None) -> Featuriser:
    return speech or featuriser_of(cfg.features)


def prepare(cfg: DataConfig, verified: bool = False, speech: Featuriser | None = None) -> Prepared:
    """The corpus of `cfg` with its feature stores, checked source by source against the stores
    (every file's size, times and inode; a changed file is hashed again) and built where missing.
    verified=True: take the result of the last full check of this data configuration (a sweep's
    driver checks once before its trials start), reading no per-file data; check in full if there
    is none.  speech: what the speech store holds (vgs.data.featurisers; default: data.features's
    MFCCs; a front-end's waveforms or cached SSL states otherwise)."""
    cfg = resolve_paths(cfg)
    record = verified_record(cfg, speech)
    if verified:
        try:
            return prepared_from_record(json.loads(record.read_text()))
        except (OSError, ValueError, KeyError, TypeError):  # none yet, or from another vgs: check in full
            pass
    prepared = checked_prepare(cfg, speech_featuriser(cfg, speech))
    record.parent.mkdir(exist_ok=True)
    tmp = record.with_name(f"{record.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(prepared_record(prepared)))
    os.replace(tmp, record)
    return prepared


def checked_prepare(cfg: DataConfig, speech: Featuriser) -> Prepared:
    root = Path(cfg.root)
    builtin = root == builtin_corpus_dir(cfg)
    if builtin:
        ensure_builtin(cfg)
    corpus = read_corpus(root, cfg.layout, cfg.image_dir or None, skip_bad=cfg.skip_bad)
    if builtin:
        corpus = keep_builtin_translations(corpus, cfg.builtin_translated)
    if cfg.translations:
        table = read_f30kent_jp(cfg.translations, cfg.translations_en or None)
        corpus, matched = attach_translations(corpus, table)
        log.info(f"translations: {matched} of {len(corpus.utterances)} captions matched in {cfg.translations}")
    if cfg.translated_only:
        kept = reduced_english(corpus)
        if not any(u.split == "train" for u in corpus.utterances if u.id in kept):
            raise CorpusError(
                f"data.translated_only: no training caption of {corpus.root} has a translation "
                f"(raw_jp in the split file, or data.translations)"
            )
        before = len(corpus.split("train"))
        corpus = dataclasses.replace(
            corpus, utterances=[u for u in corpus.utterances if u.split != "train" or u.id in kept]
        )
        log.info(f"translated_only: {len(corpus.split('train'))} of {before} training captions kept")
    if not corpus.images():
        raise CorpusError(
            f"{corpus.name} ({root}) has speech and text but no images; it cannot train a speech-image "
            f"model. Use it as the speech/text data of the text families (data.speech_text_root)"
        )
    with store_lock(cfg):  # two sweeps featurising one corpus at once: the second waits, then reuses
        store = build_speech_store(corpus, speech, cfg.store, max_frames_of(cfg, speech), skip_bad=cfg.skip_bad)
        if cfg.image_features:
            images = build_feature_image_store(corpus, cfg.image_features, cfg.store)
        elif cfg.image_store == "files":
            images = file_image_store(corpus, cfg.image_resize)
        else:
            images = build_image_store(corpus, cfg.image_resize, cfg.store, skip_bad=cfg.skip_bad)
    if len(images.index) < len(corpus.images()):  # --skip-bad left images out: so are their captions
        corpus = dataclasses.replace(corpus, utterances=[u for u in corpus.utterances if u.image in images.index])
    return Prepared(corpus, store, images, text_ids=training_text_ids(cfg, corpus, store), speech_norm=cfg.speech_norm)


def max_frames_of(cfg: DataConfig, speech: Featuriser) -> int:
    """data.max_frames counts frames of data.features's preset: the same duration in `speech`'s frames."""
    return cfg.max_frames * PRESETS[cfg.features]["hop"] // speech.hop if cfg.features in PRESETS else cfg.max_frames


def check_speech_text_source(cfg: DataConfig) -> None:
    """A NON-ALIGNED speech/text task needs its corpus named: data.speech_text_root is a folder
    (LibriSpeech in Chrupała 2019) or `builtin`, never a silent stand-in for the paper's data."""
    if cfg.speech_text_root:
        return
    raise ConfigError(
        "data.speech_text=nonaligned trains the speech/text task on a second corpus, and "
        "data.speech_text_root is empty. Chrupała 2019 trains it on LibriSpeech: set "
        "data.speech_text_root=/path/to/LibriSpeech (the folder of train-clean-100/, dev-clean/, ...; read by "
        "vgs.data.librispeech, docs/corpora.md). data.speech_text_root=builtin takes a second built-in "
        "corpus instead (synthetic eSpeak NG speech: not the paper's data)."
    )


def prepare_speech_text(cfg: DataConfig, speech: Featuriser | None = None) -> tuple[Corpus, SpeechStore]:
    """The NON-ALIGNED speech/text data (Chrupała 2019 §3.5): the corpus at data.speech_text_root (any
    layout, e.g. LibriSpeech), or with data.speech_text_root=builtin a second built-in corpus drawn
    with seed builtin_seed + 1 (new scenes, captions and recordings: disjoint from the main corpus)."""
    check_speech_text_source(cfg)
    cfg = resolve_paths(cfg)
    if cfg.speech_text_root == BUILTIN:
        root = ensure_builtin(dataclasses.replace(cfg, builtin_seed=cfg.builtin_seed + 1))
    else:
        root = Path(cfg.speech_text_root).expanduser().resolve()
        if not root.is_dir():
            raise ConfigError(f"data.speech_text_root {root}: no such folder")
    corpus = read_corpus(root, "auto", None, skip_bad=cfg.skip_bad)
    featuriser = speech_featuriser(cfg, speech)
    with store_lock(cfg):
        store = build_speech_store(corpus, featuriser, cfg.store, max_frames_of(cfg, featuriser), skip_bad=cfg.skip_bad)
    log.info(f"speech/text data (non-aligned): {len(corpus.split('train'))} training utterances of {corpus.name}")
    return corpus, store


def keep_builtin_translations(corpus: Corpus, per_image: int) -> Corpus:
    """The built-in corpus translates all five captions; keep the first `per_image` (by caption
    number), like F30kEnt-JP's two per image."""
    utts = [
        u if int(u.id.rsplit("_", 1)[1]) < per_image else dataclasses.replace(u, translation=None)
        for u in corpus.utterances
    ]
    return dataclasses.replace(corpus, utterances=utts)


def training_text_ids(cfg: DataConfig, corpus: Corpus, speech: SpeechStore) -> set[str] | None:
    """The textual-downsampling subset of the training captions (None: all keep their text)."""
    if not (cfg.text_hours or cfg.text_fraction):
        return None
    train = [u for u in corpus.split("train") if u.id in speech.index]
    hop = speech.hop / SAMPLE_RATE
    seconds = {u.id: float(speech.lengths[speech.index[u.id]]) * hop for u in train}
    try:
        kept = text_subset(
            train, seconds, seed=cfg.text_seed, hours=cfg.text_hours or None, fraction=cfg.text_fraction or None
        )
    except ValueError as e:
        raise CorpusError(f"data.text_hours/text_fraction: {e}") from e
    log.info(f"text kept for {len(kept)} of {len(train)} training captions")
    return kept


def main(argv: list[str] | None = None) -> int:
    """python -m vgs.data.prepare --data ROOT [data.key=value ...]: import and featurise a corpus
    ahead of sweeps (e.g. on a large CPU node); sweeps then find the stores ready."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m vgs.data.prepare", description=(main.__doc__ or "").split("\n")[0])
    add_overrides(p, "data.features=chrupala", what="the base config's data settings")
    add_data(p)
    add_skip_bad(p)
    # the image store depends on data.image_resize: cpu-small 80 px, paper 256
    add_base(p, "paper", why="its data settings are the ones used")
    a = p.parse_intermixed_args(argv)
    try:
        data = prepare(config_from_cli(a.base, a.overrides, a.data, a.skip_bad).data)
    except (ConfigError, CorpusError) as e:
        return report_error(e)
    splits = {s: len(data.corpus.split(s)) for s in ("train", "val", "test")}
    print(
        f"{data.corpus.name}: {splits} utterances, {len(data.corpus.images())} images; "
        f"speech store {data.speech.path} ({len(data.speech.ids)} utterances), image store {data.images.path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())


# A process that trains one configuration after another (a sweep's trial worker: Tune's
# reuse_actors) opens a data configuration once: the corpus index and the memory-mapped stores stay
# open for the next configuration that reads the same data.
_OPENED: dict[str, Prepared] = {}
_OPENED_KEPT = 4  # data configurations kept per process (a sweep over data.* keys has a few)


def opened_data(data: DataConfig, speech: Featuriser) -> Prepared:
    """`data` prepared, opened once per process: the sweep's driver checked the corpus and its stores
    before the first trial started, so this reads their verified record, no per-file data."""
    key = str(verified_record(resolve_paths(data), speech))  # names the data configuration
    if key not in _OPENED:
        if len(_OPENED) >= _OPENED_KEPT:
            _OPENED.pop(next(iter(_OPENED)))
        _OPENED[key] = prepare(data, verified=True, speech=speech)
    return _OPENED[key]
