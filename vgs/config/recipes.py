"""Named base configurations (--base NAME, `base:` in a search space) and the folders vgs uses."""

from __future__ import annotations

import os
from pathlib import Path

from vgs.config.overrides import apply_overrides, parse_cli_overrides
from vgs.config.schema import (
    AsrConfig,
    Config,
    ConfigError,
    DataConfig,
    ImageConfig,
    ModelConfig,
    MultitaskConfig,
    SpeechConfig,
    TextConfig,
    ThreeTaskConfig,
    TrainConfig,
)
from vgs.log import get_logger

log = get_logger(__name__)

# ---------------------------------------------------------------- named base configs


def cpu_small() -> Config:
    """The CPU recipe for the built-in corpus (docs/cpu-recipe.md, "The CPU recipe", measured with the
    cpu_recipe sweep): DG1A256 (one BiGRU layer of 128 per direction over 128 conv channels at
    stride 4) with a tiny DenseNet on 64x64 crops of 80x80 images, MFCCs standardised per
    utterance, batches of 64 at a rate of 3e-3 held constant and annealed over the last 30%
    (wsd), three epochs of all five captions per image.  The papers' configurations are `paper`
    and `higy2020`."""
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
        model=ModelConfig(
            latent=128,
            speech=SpeechConfig(layers=1, conv_stride=3),
            image=ImageConfig(growth_rate=8, blocks="2-2-2-2", init_features=16),
        ),
        train=TrainConfig(epochs=3, batch_size=16, lr=2e-3, captions_per_image=1, clip_grad=2.0, test_at_end=False),
    )


def paper() -> Config:
    """Mortazavi 2020's DG3A1024 with DenseNet-264 from pixels at 224x224 (a GPU configuration)."""
    return Config(
        model=ModelConfig(latent=1024, speech=SpeechConfig(layers=3)),
        train=TrainConfig(epochs=120, batch_size=64, lr=1e-4, eval_batch_size=256),
    )


def cpu_text() -> Config:
    """cpu-small scaled for the text families of Higy et al. 2020: 1-layer text encoder, 2-layer 128-unit
    ASR/SLT encoder, small decoder, beam 3, constant learning rate (the attention decoder learns
    steadily with it on CPU: WER 0.11 after 8 epochs of a 300-image built-in corpus), all five
    captions per image per epoch."""
    cfg = cpu_small()
    cfg.data = DataConfig(image_resize=40, image_crop=32)
    cfg.model.latent, cfg.model.speech = 128, SpeechConfig(layers=2, conv_stride=3)
    cfg.model.text = TextConfig(embed=32, layers=1)
    cfg.model.asr = AsrConfig(encoder_layers=2, hidden=128, embed=32, attention=128, beam=3)
    cfg.model.mtl = MultitaskConfig(shared_layers=1, s2i_layers=1, objective_layers=1)
    cfg.model.match = MultitaskConfig(shared_layers=1, s2i_layers=1, objective_layers=0)  # the paper's split, halved
    cfg.train = TrainConfig(epochs=8, batch_size=32, lr=2e-3, scheduler="constant", captions_per_image=0, clip_grad=2.0)
    return cfg


def higy2020() -> Config:
    """Higy et al. 2020's sizes (a GPU configuration): 39-d MFCC with deltas, speech encoder 4 BiGRU
    layers of 1024 (joint space 2048), text encoder 2 x 1024, ASR/SLT encoder 5 x 768 with a
    1 x 768 decoder, mtl-transcribe (4, 1, 1), Adam with a cyclic rate 1e-6..2e-4, 32 epochs.
    Its image side is a linear map of ResNet-152 ten-crop features (model.image.encoder=features):
    data.image_features must point at them (`vgs features images --arch resnet152 ...`)."""
    return Config(
        data=DataConfig(features="chrupala"),
        model=ModelConfig(
            latent=2048,
            speech=SpeechConfig(layers=4, conv_stride=2),
            image=ImageConfig(encoder="features", features_from="resnet152"),
            text=TextConfig(layers=2),
            asr=AsrConfig(),
            mtl=MultitaskConfig(shared_layers=4, s2i_layers=1, objective_layers=1),
        ),
        train=TrainConfig(epochs=32, batch_size=32, lr=2e-4, min_lr=1e-6, scheduler="cyclic", eval_batch_size=128),
    )


def chrupala2019() -> Config:
    """Chrupała 2019's sizes (a GPU configuration; `python -m vgs.sweep sharing --size paper`):
    12 MFCC + log energy (13-d, no deltas; 25 ms windows every 10 ms), conv 64 channels, kernel 6,
    stride 2, forward-only GRUs of 1024, scalar attention (one weight per step) with an MLP of 128,
    margin 0.2, Adam at 2e-4 held constant with gradient clipping at 2.0, 25 epochs (best epoch by R@10).
    Its image side is VGG-16's
    4096-d pre-classification features mapped linearly to 1024: point data.image_features at them
    (`vgs features images --arch vgg16 ...`); the sharing rows set the layer counts."""
    return Config(
        data=DataConfig(features="chrupala13"),
        model=ModelConfig(
            family="three-task",
            latent=1024,
            speech=SpeechConfig(
                conv_channels=64, conv_kernel=6, conv_stride=2, attention_hidden=128, attention="scalar"
            ),
            text=TextConfig(attention_hidden=128),
            image=ImageConfig(encoder="features", features_from="vgg16"),
            three=ThreeTaskConfig(bidirectional=False),
        ),
        # eq. 1 sums the hinge over pairs: the clipping at 2.0 acts on that gradient
        train=TrainConfig(
            epochs=25, batch_size=32, lr=2e-4, scheduler="constant", clip_grad=2.0, margin=0.2, loss_reduction="sum"
        ),
    )


BASE_CONFIGS = {
    "cpu-small": cpu_small,
    "cpu-tiny": cpu_tiny,
    "cpu-text": cpu_text,
    "paper": paper,
    "higy2020": higy2020,
    "chrupala2019": chrupala2019,
}


# old names: each still works, with a warning that names the new one
RENAMED_BASES = {"seed003": "higy2020"}  # Higy et al. 2020's code name for its chosen setup


def base_config(name: str) -> Config:
    if name in RENAMED_BASES:
        log.warning(
            f"base config '{name}' is deprecated: use '{RENAMED_BASES[name]}' (the old name still works, for now)"
        )
        name = RENAMED_BASES[name]
    if name not in BASE_CONFIGS:
        raise ConfigError(f"unknown base config '{name}'; known: {', '.join(sorted(BASE_CONFIGS))}")
    return BASE_CONFIGS[name]()


# ---------------------------------------------------------------- locations


def make_folder(path: Path, what: str, hint: str = "") -> Path:
    """`path`, made where missing; a file in its place or a folder that cannot be made is named as
    `what` (e.g. "--storage DIR"), followed by `hint`."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{what}: not a folder (a file){hint}")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"{what}: cannot make the folder ({e.strerror or e}){hint}") from e
    return path


def vgs_home() -> Path:
    """Where corpora, feature stores and Ray results live unless told otherwise; made where missing,
    and named when it cannot be (every command writes under it)."""
    home = Path(os.environ.get("VGS_HOME", Path.cwd() / ".vgs")).resolve()
    if home not in _USABLE_HOMES:
        where = "VGS_HOME" if "VGS_HOME" in os.environ else "the default VGS_HOME (./.vgs)"
        _USABLE_HOMES.add(make_folder(home, f"{where} {home}", "; set VGS_HOME to a folder"))
    return home


_USABLE_HOMES: set[Path] = set()  # checked once per process


def default_tracking_uri() -> str:
    """SQLite file at the project root (the folder the command runs in)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd().resolve() / 'mlflow.db'}"


def existing_tracking_uri(uri: str | None) -> str:
    """The tracking URI of a command that only reads runs (report, retrieve): its SQLite file must
    exist, where MLflow would make an empty database and then find no runs in it."""
    uri = uri or default_tracking_uri()
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).is_file():
        raise ConfigError(
            f"no MLflow database at {uri[len('sqlite:///') :]}; run a sweep first (it makes one there), "
            f"or pass the --tracking-uri the sweep used"
        )
    return uri


def config_from_cli(base: str, items: list[str], data: str | None = None, skip_bad: bool = False) -> Config:
    """A command line's config: the named base, then `key=value` items, then --data/--skip-bad.
    vgs.tasks.factory.cli_config adds the families' check of model.* keys."""
    overrides = parse_cli_overrides(items)
    if data:
        overrides["data.root"] = data
    if skip_bad:
        overrides["data.skip_bad"] = "true"
    return apply_overrides(base_config(base), overrides)
