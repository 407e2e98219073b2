"""Typed configuration tree.

A dotted path (``model.speech.layers``) is the one name of a knob everywhere: CLI
override, search-space YAML, MLflow param and report column.  Unknown paths and
values of the wrong type are refused with an error that names the key.
"""
from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints


class ConfigError(ValueError):
    """A configuration that cannot be built; the message names the offending key."""


@dataclass
class SpeechConfig:
    """conv1d + BiGRU stack + vectorial attention (seed 002 §4.1)."""

    layers: int = 2
    conv_channels: int = 64
    conv_kernel: int = 6
    # The paper does not give a stride; >1 shortens the GRU's input (CPU configs use 2-3).
    conv_stride: int = 1
    attention_hidden: int = 128
    # vectorial: a weight per step and dimension (seeds 002/003); scalar: one weight per step
    # (seed 004 eq. 4-5; three-task's text branches too)
    attention: str = "vectorial"


@dataclass
class ImageConfig:
    """DenseNet trained from pixels + global average pool + linear N (seed 002 §4.2)."""

    growth_rate: int = 32
    # String key "6-12-64-48" rather than a tuple so that it survives YAML, Tune and MLflow.
    blocks: str = "6-12-64-48"
    init_features: int = 64
    bn_size: int = 4
    # features: a linear map of precomputed, fixed image features (data.image_features; the image side
    # of Higy et al. 2020 and Chrupała 2019), refused without them; densenet: from pixels (Mortazavi
    # 2020); auto: features when data.image_features is set, else densenet.
    encoder: str = "auto"
    features_from: str = ""  # the torchvision model the features come from (named in errors and plans)


@dataclass
class TextConfig:
    """Character text encoder (seed 003 §3.1.2): embedding + BiGRU (N/2 per direction) + vectorial
    attention + L2.  `source` picks the text: English transcripts or Japanese translations."""

    source: str = "transcript"  # transcript | translation
    embed: int = 128
    layers: int = 2
    attention_hidden: int = 128


@dataclass
class AsrConfig:
    """Attention encoder-decoder for ASR/SLT (seed 003 §3.1.3): conv + BiGRU encoder (`hidden`
    per direction), Bahdanau attention, GRU decoder, character output."""

    encoder_layers: int = 5
    hidden: int = 768
    decoder_layers: int = 1
    embed: int = 64  # previous-character embedding of the decoder
    attention: int = 256  # Bahdanau attention size
    beam: int = 10  # beam width for test decoding (and pipe-seq's training transcripts)
    val_beam: int = 1  # per-epoch validation decoding (1 = greedy: cheap)
    max_chars: int = 300  # decoding stops here if no end-of-sentence came
    length_penalty: float = 0.0  # beams ranked by logprob / length**penalty (0: plain logprob)


@dataclass
class MultitaskConfig:
    """Layer split of the multitask speech encoders (seed 003 Table 4 triplets, seed 004 Table 1):
    shared BiGRU layers, then speech->image layers and secondary-task layers (0 = attention only)."""

    shared_layers: int = 4
    s2i_layers: int = 1
    task_layers: int = 1
    asr_epochs: int = 0  # pipe-seq: epochs of ASR/SLT training before the text-image part (0: half)
    # pipe-seq: the ASR/SLT phase ends early once val WER (BLEU) has not improved for this many
    # epochs (training to convergence); its remaining epochs go to the text-image part (0: never)
    asr_patience: int = 0


@dataclass
class ThreeTaskConfig:
    """Chrupała's three-task model (seed 004 §3, Table 1): layer counts of the shared speech (S)
    and text (T) encoders and of the task encoders S2I, S2T, T2S, T2I; 0 = attention only,
    -1 = ablated (the whole task it serves is left out, Table 1's dot)."""

    speech_layers: int = 2
    text_layers: int = 1
    s2i: int = 1
    s2t: int = 0
    t2s: int = 0
    t2i: int = 1
    # every GRU of the model reads both directions (N/2 units each); False: forward only with N
    # units, as seed 004's GRUs of 1024 (the chrupala2019 base)
    bidirectional: bool = True


@dataclass
class ModelConfig:
    # coembed (speech-image) | text-image | asr | slt | pipe-ind | pipe-seq | mtl-transcribe |
    # mtl-translate | mtl-match | three-task
    family: str = "coembed"
    latent: int = 1024  # N: embedding size; the BiGRU has N/2 units per direction
    speech: SpeechConfig = field(default_factory=SpeechConfig)
    image: ImageConfig = field(default_factory=ImageConfig)
    text: TextConfig = field(default_factory=TextConfig)
    asr: AsrConfig = field(default_factory=AsrConfig)
    mtl: MultitaskConfig = field(default_factory=MultitaskConfig)  # mtl-transcribe / mtl-translate
    # mtl-match's own split (seed 003 §3.1.5, after Chrupała 2019): shared 2 x BiGRU, speech->image
    # branch 2 x BiGRU, speech->text branch attention only; widths N/2 per direction
    match: MultitaskConfig = field(default_factory=lambda: MultitaskConfig(shared_layers=2, s2i_layers=2,
                                                                           task_layers=0))
    three: ThreeTaskConfig = field(default_factory=ThreeTaskConfig)


@dataclass
class DataConfig:
    # Corpus directory (Flickr8K Audio, Places or SpokenCOCO layout); empty means the built-in corpus.
    root: str = ""
    layout: str = "auto"  # auto | flickr8k | places | spokencoco | librispeech
    image_dir: str = ""  # folder of image files; empty means look inside root
    builtin_images: int = 2500
    builtin_seed: int = 0
    # Validation and test images of the built-in corpus (0: a tenth of the images each, 250 of 2500;
    # builtin_test=1000 gives the papers' 1000-image test protocol); the rest train.
    builtin_val: int = 0
    builtin_test: int = 0
    # Captions per image that keep their Japanese translation in the built-in corpus (it writes
    # all five): 2, as F30kEnt-JP translates two captions per Flickr8K image (seed 003 §3.4.1).
    builtin_translated: int = 2
    # White-noise level of the built-in corpus's recordings, a dB range each recording draws from
    # ("20-40": clean speech); lower makes recognition harder (pipeline_vs_mtl: "0-20").
    builtin_snr: str = "20-40"
    features: str = "mortazavi"  # MFCC preset: mortazavi | chrupala
    # Standardisation of the MFCCs: corpus = the training split's mean and std per dimension (the
    # papers); utterance = each utterance's own mean and std (CMVN: less speaker, faster learning).
    speech_norm: str = "corpus"
    max_frames: int = 8192  # longer utterances are dropped and counted (seed 002 §5.1)
    skip_bad: bool = False  # leave out unreadable audio (listed in a report) instead of stopping
    image_resize: int = 256  # images are stored decoded at this size ...
    image_crop: int = 224  # ... and randomly cropped (train) or centre-cropped (eval) to this
    store: str = ""  # feature store folder; empty means <VGS_HOME>/store
    # Precomputed image features (.npy + .names.txt, .npz, .parquet or platalea's .pt), keyed by image
    # file name; when set, images are not decoded and the image encoder is a linear layer (seeds 003/004).
    image_features: str = ""
    # F30kEnt-JP per-image Japanese files (replace any raw_jp); English Flickr30k Entities Sentences/
    # folder for matching (empty: a Sentences folder beside or inside it).
    translations: str = ""
    translations_en: str = ""
    # Textual downsampling of the training split (seed 003 §4.4): keep text for this many hours of
    # speech, or this fraction of it (0 = all); speech and images are unchanged.
    text_hours: float = 0.0
    text_fraction: float = 0.0
    text_seed: int = 0
    # Train only on captions that have a translation (speech, image and text): seed 003's
    # "reduced English" dataset, and the size of its Japanese experiments; val/test stay whole.
    translated_only: bool = False
    # Data of the speech/text task (three-task, seed 004 §3.5): aligned = the same captions as the
    # other tasks; nonaligned = disjoint data: the corpus at speech_text_root (e.g. LibriSpeech),
    # or, when empty, a second built-in corpus drawn with another seed.
    speech_text: str = "aligned"
    speech_text_root: str = ""


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 32
    lr: float = 2e-4
    scheduler: str = "calr"  # calr | calwr | cyclic | constant | wsd
    min_lr: float = 1e-6  # floor of the cosine schedules, low end of the cyclic one
    calwr_t0: int = 5  # CALWR: epochs in the first cycle
    calwr_t_mult: int = 1  # CALWR: growth of the cycle length
    cyclic_step_epochs: float = 2.0  # cyclic LR: epochs per half cycle
    decay_fraction: float = 0.3  # wsd: the last fraction of the steps anneals (cosine) to min_lr
    clip_grad: float = 0.0  # max gradient norm; 0 turns clipping off
    # Seed 002's warm second run: the last restart_epochs of train.epochs start again from the
    # best checkpoint so far, with a fresh optimizer at restart_lr_factor x train.lr and their own
    # schedule (DG2A2048: 120 epochs, then 30 from the best at half the rate). 0: one run.
    restart_epochs: int = 0
    restart_lr_factor: float = 0.5
    # A family with several objectives (multitask, pipelines, three-task) steps each with its own
    # Adam and LR schedule, as the papers' code does (platalea's mtl.experiment): a shared layer's
    # update for one task is then scaled by that task's gradient moments, not by the other task's
    # larger ones.  false: one Adam over every objective's steps.
    task_optimizers: bool = True
    margin: float = 0.2  # hinge margin beta (eq. 3)
    augment: bool = True  # random crop + horizontal flip of training images
    # After the last epoch: speaker-ID probe and RSA against text and images (seed 004 §3.7), on
    # up to 600 validation captions, logged as analysis_* metrics.
    analysis: bool = False
    # Validation captions of the speaker-ID probe and RSA (0: the whole validation set, as Chrupała
    # 2019), and utterances of the phoneme probe, half to train it, half to test (the paper: 2,500 + 2,500).
    analysis_captions: int = 600
    phoneme_utterances: int = 1000
    # Captions drawn per image per epoch; 0 uses all of them (CPU configs use 1 for short epochs).
    captions_per_image: int = 0
    eval_batch_size: int = 128
    test_at_end: bool = True  # evaluate the best checkpoint on the test split when done
    seed: int = 0
    threads: int = 1  # torch intra-op threads per trial (per worker)
    # Several workers per trial (sweep --resources workers=N): batch_size is the global batch, split
    # across them; the contrastive losses use the negatives of every worker, as one worker would.
    gather_negatives: bool = True
    # Mixed precision of the training step on a GPU: off | bf16 (autocast; no loss scaling needed).
    # Evaluation stays in float32.  Ignored on CPU, where bf16 is slower.
    amp: str = "off"
    device: str = "auto"  # auto | cpu | cuda


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# ---------------------------------------------------------------- dict <-> dataclass


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(data: dict, cls: type = Config, prefix: str = "") -> Any:
    """Build a dataclass tree from a nested dict, refusing unknown keys."""
    if not isinstance(data, dict):
        raise ConfigError(f"config section '{prefix or '<root>'}' must be a mapping, got {data!r}")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if key not in names:
            raise ConfigError(_unknown_key_message(path, flat_keys()))
        typ = hints[key]
        if dataclasses.is_dataclass(typ):
            kwargs[key] = from_dict(value, typ, prefix=f"{path}.")
        else:
            kwargs[key] = coerce(path, value, typ)
    return cls(**kwargs)


def flatten(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """Config -> {'model.speech.layers': 2, ...}."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            out.update(flatten(value, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = value
    return out


def flat_keys() -> list[str]:
    return sorted(flatten(Config()))


def key_type(path: str) -> type:
    node: Any = Config
    parts = path.split(".")
    for i, part in enumerate(parts):
        hints = get_type_hints(node) if dataclasses.is_dataclass(node) else {}
        if part not in hints:
            raise ConfigError(_unknown_key_message(path, flat_keys()))
        node = hints[part]
        if dataclasses.is_dataclass(node) and i == len(parts) - 1:
            raise ConfigError(f"config key '{path}' is a section, not a value; use one of its "
                              f"keys such as '{path}.{dataclasses.fields(node)[0].name}'")
    return node


def coerce(path: str, value: Any, typ: type) -> Any:
    """Convert value (possibly a CLI string) to typ, or raise naming the key."""
    try:
        if typ is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.lower() in ("true", "1", "yes")
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            raise ValueError
        if typ is int:
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if typ is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if typ is str:
            if isinstance(value, (dict, list)):
                raise ValueError
            return str(value)
    except (TypeError, ValueError):
        pass
    else:
        return value
    raise ConfigError(f"config key '{path}' expects {typ.__name__}, got {value!r}")


def apply_overrides(cfg: Config, overrides: dict[str, Any]) -> Config:
    """Return a copy of cfg with dotted-path overrides applied (validated and coerced)."""
    flat = flatten(cfg)
    for path, value in overrides.items():
        typ = key_type(path)
        flat[path] = coerce(path, value, typ)
    return from_dict(unflatten(flat))


def unflatten(flat: dict[str, Any]) -> dict:
    nested: dict = {}
    for path, value in flat.items():
        node = nested
        *parents, leaf = path.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return nested


# Numbers a key's type admits but training cannot use: (key, test, what it must be).
_RANGES = (
    ("train.epochs", lambda v: v >= 1, ">= 1"),
    ("train.batch_size", lambda v: v >= 1, ">= 1"),
    ("train.eval_batch_size", lambda v: v >= 1, ">= 1"),
    ("train.lr", lambda v: v > 0, "> 0"),
    ("train.min_lr", lambda v: v >= 0, ">= 0"),
    ("train.margin", lambda v: v >= 0, ">= 0"),
    ("train.clip_grad", lambda v: v >= 0, ">= 0 (0: no clipping)"),
    ("train.captions_per_image", lambda v: v >= 0, ">= 0 (0: all captions)"),
    ("train.threads", lambda v: v >= 1, ">= 1"),
    ("train.calwr_t0", lambda v: v >= 1, ">= 1"),
    ("train.calwr_t_mult", lambda v: v >= 1, ">= 1"),
    ("train.cyclic_step_epochs", lambda v: v > 0, "> 0"),
    ("train.restart_epochs", lambda v: v >= 0, ">= 0 (0: no second run)"),
    ("train.restart_lr_factor", lambda v: v > 0, "> 0"),
    ("model.mtl.asr_patience", lambda v: v >= 0, ">= 0 (0: the ASR phase runs all its epochs)"),
    ("model.latent", lambda v: v >= 2 and v % 2 == 0, "an even number >= 2 (N/2 GRU units per direction)"),
    ("model.speech.layers", lambda v: v >= 1, ">= 1"),
    ("data.builtin_images", lambda v: v >= 3, ">= 3 (train, validation and test need an image each)"),
)


def _value_at(cfg: Config, path: str) -> Any:
    node: Any = cfg
    for part in path.split("."):
        node = getattr(node, part)
    return node


def check_consistent(cfg: Config) -> None:
    """Checks across keys that a single key's type cannot express; raises naming the keys."""
    for key, ok, must in _RANGES:
        value = _value_at(cfg, key)
        if not ok(value):
            raise ConfigError(f"{key} must be {must}, got {value!r}")
    if cfg.data.image_crop > cfg.data.image_resize:
        raise ConfigError(f"data.image_crop ({cfg.data.image_crop}) exceeds data.image_resize ({cfg.data.image_resize})")
    d = cfg.data
    if d.text_hours < 0 or not 0 <= d.text_fraction <= 1:
        raise ConfigError(f"data.text_hours must be >= 0 and data.text_fraction in 0..1 "
                          f"(got {d.text_hours}, {d.text_fraction})")
    if d.text_hours > 0 and d.text_fraction > 0:
        raise ConfigError("set at most one of data.text_hours and data.text_fraction")
    if d.speech_text not in ("aligned", "nonaligned"):
        raise ConfigError(f"data.speech_text must be aligned or nonaligned, got '{d.speech_text}'")
    if d.speech_norm not in ("corpus", "utterance"):
        raise ConfigError(f"data.speech_norm must be corpus or utterance, got '{d.speech_norm}'")
    if not 0 < cfg.train.decay_fraction <= 1:
        raise ConfigError(f"train.decay_fraction must be in (0, 1], got {cfg.train.decay_fraction}")
    if cfg.train.restart_epochs >= cfg.train.epochs:
        raise ConfigError(f"train.restart_epochs ({cfg.train.restart_epochs}) must be fewer than train.epochs "
                          f"({cfg.train.epochs}): they are the last epochs of the budget")
    if cfg.model.speech.attention not in ("vectorial", "scalar"):
        raise ConfigError(f"model.speech.attention must be vectorial or scalar, got '{cfg.model.speech.attention}'")
    if cfg.train.amp not in ("off", "bf16"):
        raise ConfigError(f"train.amp must be off or bf16, got '{cfg.train.amp}'")
    if cfg.model.image.encoder not in IMAGE_ENCODERS:
        raise ConfigError(f"model.image.encoder must be {', '.join(IMAGE_ENCODERS)}, got '{cfg.model.image.encoder}'")
    if cfg.model.image.encoder == "densenet" and cfg.data.image_features:
        raise ConfigError("model.image.encoder=densenet reads pixels, but data.image_features is set: leave one out")
    if cfg.train.analysis_captions < 0 or cfg.train.phoneme_utterances < 0:
        raise ConfigError("train.analysis_captions and train.phoneme_utterances must be >= 0 (0: all of them)")


IMAGE_ENCODERS = ("auto", "densenet", "features")


def check_runnable(cfg: Config) -> None:
    """Everything a run checks before any corpus work: check_consistent, then check_image_side."""
    check_consistent(cfg)
    check_image_side(cfg)


def check_image_side(cfg: Config) -> None:
    """A configuration whose image side is fixed features (model.image.encoder=features) refuses to
    start without them, naming the command that extracts them: it never falls back to a DenseNet."""
    image = cfg.model.image
    if image.encoder != "features" or cfg.data.image_features:
        return
    arch = image.features_from or "resnet152"
    corpus = cfg.data.root or "CORPUS"
    raise ConfigError(
        f"model.image.encoder=features: the image side is a linear map of fixed {arch} features, and "
        f"data.image_features is empty. Extract them once with\n"
        f"    vgs features images --data {corpus} --arch {arch} --weights {arch}.pth --out {arch}-features.npz\n"
        f"then add data.image_features={arch}-features.npz. vgs never downloads weights: save torchvision's "
        f"ImageNet {arch} state_dict to {arch}.pth on a machine that has them (torch.save(torchvision.models."
        f"{arch}(weights='DEFAULT').state_dict(), '{arch}.pth')) and copy it here. To train a DenseNet from "
        f"pixels instead (not the paper's setup) set model.image.encoder=densenet.")


def parse_cli_overrides(items: list[str]) -> dict[str, str]:
    """['model.latent=256', ...] -> {'model.latent': '256'}."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like key=value (e.g. model.speech.layers=3)")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def cli_config(base: str, items: list[str], data: str | None = None, skip_bad: bool = False) -> Config:
    """A command line's config: the named base, then `key=value` items, then --data/--skip-bad."""
    overrides = parse_cli_overrides(items)
    if data:
        overrides["data.root"] = data
    if skip_bad:
        overrides["data.skip_bad"] = "true"
    cfg = apply_overrides(base_config(base), overrides)
    from vgs.tasks import check_family_keys  # the families know which model.* keys they read

    check_family_keys(cfg.model, overrides)
    return cfg


def _unknown_key_message(path: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(path, valid, n=3, cutoff=0.6)
    if close:  # the suggestion is the answer; the whole list would bury it
        return f"unknown config key '{path}'; did you mean {', '.join(repr(c) for c in close)}?"
    section = path.rsplit(".", 1)[0] + "." if "." in path else ""
    near = [k for k in valid if section and k.startswith(section)]
    listed = f"keys under {section[:-1]}: {', '.join(near)}" if near else f"valid keys: {', '.join(valid)}"
    return f"unknown config key '{path}'; {listed}"


# ---------------------------------------------------------------- named base configs


def cpu_small() -> Config:
    """The CPU recipe for the built-in corpus (README, "The CPU recipe", measured with the
    cpu_recipe sweep): DG1A256 (one BiGRU layer of 128 per direction over 128 conv channels at
    stride 4) with a tiny DenseNet on 64x64 crops of 80x80 images, MFCCs standardised per
    utterance, batches of 64 at a rate of 3e-3 held constant and annealed over the last 30%
    (wsd), three epochs of all five captions per image.  The papers' configurations are `paper`
    and `seed003`."""
    return Config(
        data=DataConfig(image_resize=80, image_crop=64, speech_norm="utterance"),
        model=ModelConfig(
            latent=256,
            speech=SpeechConfig(layers=1, conv_channels=128, conv_stride=4),
            image=ImageConfig(growth_rate=8, blocks="2-2-2-2", init_features=16),
            text=TextConfig(embed=32, layers=1),  # model.family=text-image: the same budget from text
        ),
        train=TrainConfig(epochs=3, batch_size=64, lr=3e-3, scheduler="wsd", captions_per_image=0, clip_grad=2.0),
    )


def cpu_tiny() -> Config:
    """Smallest sensible configuration, for tests and the smoke sweep: DG1A128 on 32x32 crops, one
    caption per image per epoch, three epochs."""
    return Config(
        data=DataConfig(image_resize=40, image_crop=32),
        model=ModelConfig(latent=128, speech=SpeechConfig(layers=1, conv_stride=3),
                          image=ImageConfig(growth_rate=8, blocks="2-2-2-2", init_features=16)),
        train=TrainConfig(epochs=3, batch_size=16, lr=2e-3, captions_per_image=1, clip_grad=2.0, test_at_end=False),
    )


def paper() -> Config:
    """Seed 002's DG3A1024 with DenseNet-264 from pixels at 224x224 (a GPU configuration)."""
    return Config(
        model=ModelConfig(latent=1024, speech=SpeechConfig(layers=3)),
        train=TrainConfig(epochs=120, batch_size=64, lr=1e-4, eval_batch_size=256),
    )


def cpu_text() -> Config:
    """cpu-small scaled for the text families of seed 003: 1-layer text encoder, 2-layer 128-unit
    ASR/SLT encoder, small decoder, beam 3, constant learning rate (the attention decoder learns
    steadily with it on CPU: WER 0.11 after 8 epochs of a 300-image built-in corpus), all five
    captions per image per epoch."""
    cfg = cpu_small()
    cfg.data = DataConfig(image_resize=40, image_crop=32)
    cfg.model.latent, cfg.model.speech = 128, SpeechConfig(layers=2, conv_stride=3)
    cfg.model.text = TextConfig(embed=32, layers=1)
    cfg.model.asr = AsrConfig(encoder_layers=2, hidden=128, embed=32, attention=128, beam=3)
    cfg.model.mtl = MultitaskConfig(shared_layers=1, s2i_layers=1, task_layers=1)
    cfg.model.match = MultitaskConfig(shared_layers=1, s2i_layers=1, task_layers=0)  # the paper's split, halved
    cfg.train = TrainConfig(epochs=8, batch_size=32, lr=2e-3, scheduler="constant", captions_per_image=0,
                            clip_grad=2.0)
    return cfg


def seed003() -> Config:
    """Seed 003's sizes (a GPU configuration): 39-d MFCC with deltas, speech encoder 4 BiGRU
    layers of 1024 (joint space 2048), text encoder 2 x 1024, ASR/SLT encoder 5 x 768 with a
    1 x 768 decoder, mtl-transcribe (4, 1, 1), Adam with a cyclic rate 1e-6..2e-4, 32 epochs.
    Its image side is a linear map of ResNet-152 ten-crop features (model.image.encoder=features):
    data.image_features must point at them (`vgs features images --arch resnet152 ...`)."""
    return Config(
        data=DataConfig(features="chrupala"),
        model=ModelConfig(latent=2048, speech=SpeechConfig(layers=4, conv_stride=2),
                          image=ImageConfig(encoder="features", features_from="resnet152"),
                          text=TextConfig(layers=2), asr=AsrConfig(),
                          mtl=MultitaskConfig(shared_layers=4, s2i_layers=1, task_layers=1)),
        train=TrainConfig(epochs=32, batch_size=32, lr=2e-4, min_lr=1e-6, scheduler="cyclic", eval_batch_size=128),
    )


def chrupala2019() -> Config:
    """Seed 004's sizes (a GPU configuration; `python -m vgs.sweep sharing --size paper`):
    12 MFCC + log energy (13-d, no deltas; 25 ms windows every 10 ms), conv 64 channels, kernel 6,
    stride 2, forward-only GRUs of 1024, scalar attention (one weight per step) with an MLP of 128, margin 0.2, Adam at 2e-4 held constant
    with gradient clipping at 2.0, 25 epochs (best epoch by R@10).  Its image side is VGG-16's
    4096-d pre-classification features mapped linearly to 1024: point data.image_features at them
    (`vgs features images --arch vgg16 ...`); the sharing rows set the layer counts."""
    return Config(
        data=DataConfig(features="chrupala13"),
        model=ModelConfig(family="three-task", latent=1024,
                          speech=SpeechConfig(conv_channels=64, conv_kernel=6, conv_stride=2, attention_hidden=128,
                                              attention="scalar"),
                          text=TextConfig(attention_hidden=128),
                          image=ImageConfig(encoder="features", features_from="vgg16"),
                          three=ThreeTaskConfig(bidirectional=False)),
        train=TrainConfig(epochs=25, batch_size=32, lr=2e-4, scheduler="constant", clip_grad=2.0, margin=0.2),
    )


BASE_CONFIGS = {"cpu-small": cpu_small, "cpu-tiny": cpu_tiny, "cpu-text": cpu_text, "paper": paper,
                "seed003": seed003, "chrupala2019": chrupala2019}


def base_config(name: str) -> Config:
    if name not in BASE_CONFIGS:
        raise ConfigError(f"unknown base config '{name}'; known: {', '.join(sorted(BASE_CONFIGS))}")
    return BASE_CONFIGS[name]()


# ---------------------------------------------------------------- locations


def vgs_home() -> Path:
    """Where corpora, feature stores and Ray results live unless told otherwise."""
    return Path(os.environ.get("VGS_HOME", Path.cwd() / ".vgs")).resolve()


def default_tracking_uri() -> str:
    """SQLite file at the project root (the folder the command runs in)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd().resolve() / 'mlflow.db'}"
