"""The family-level factory: build a configuration's network, name it, and read a command line's
config, each through the family's Task (open_clip's factory, one level above vgs.models)."""

from __future__ import annotations

import torch.nn as nn

from vgs.config import Config, ConfigError, ModelConfig, check_runnable, config_from_cli, parse_cli_overrides
from vgs.data.image_features import check_feature_network
from vgs.data.prepare import check_speech_text_source
from vgs.data.records import CorpusError
from vgs.models.ssl import FrontEnded, SSLFrontEnd, cached, check_frontend
from vgs.tasks import Sizes, check_family_keys, task_of


def model_name(cfg: ModelConfig) -> str:
    """A short name for logs and tables: DG{L}A{N}[-small|-tiny|-custom] for the co-embedding
    (the registry's terms), the family and its layer counts otherwise; an SSL front-end first
    (hubert_base.weighted+DG1A256; .ft fine-tuned, .full with its CNN, .online frozen but not cached)."""
    name = task_of(cfg).model_name(cfg)
    fe = cfg.speech.frontend
    if not fe.arch:
        return name
    read = fe.readout if fe.readout != "layer" else f"layer{fe.layer}"
    trains = {"finetune": ".ft", "full": ".full"}.get(fe.train, "" if fe.cache else ".online")
    return f"{fe.arch}.{read}{trains}+{name}"


def text_source(cfg: ModelConfig) -> str | None:
    """The text a family trains on (None: it uses no text)."""
    return task_of(cfg).text_source(cfg)


def uses_nonaligned_speech_text(cfg) -> bool:
    """Whether a configuration (vgs.config.Config) trains on a NON-ALIGNED speech/text corpus."""
    return task_of(cfg.model).uses_speech_text_corpus(cfg)


def build_model(
    cfg: ModelConfig,
    input_dim: int,
    image_dim: int = 0,
    vocab_size: int = 0,
    epochs: int = 1,
    max_chars: int | None = None,
    weights: bool = True,
) -> nn.Module:
    """The family's network (its Task builds it).  input_dim: speech feature size; image_dim: size
    of precomputed image features (0: pixels); vocab_size: characters of the text families;
    epochs: the training budget; max_chars: decoding limit (None: model.asr.max_chars); weights=False:
    an SSL front-end's shapes only, its weights not read (a plan or a check on the meta device)."""
    task = task_of(cfg)
    task.text_source(cfg)  # an unusable model.text.source is refused before anything is built
    if cfg.speech.head != "gru" and not task.transformer_head:
        raise ValueError(f"model.speech.head={cfg.speech.head}: family '{cfg.family}' reads speech with its GRUs only")
    if not cfg.speech.frontend.arch:
        return task.build(cfg, Sizes(input_dim, image_dim, vocab_size, epochs, max_chars))
    frontend = SSLFrontEnd(cfg.speech.frontend, weights=weights)
    if input_dim != frontend.input_dim:
        raise ValueError(
            f"the speech store holds {input_dim} values per frame, the front-end ({cfg.speech.frontend.arch}, "
            f"{'cached states' if cached(cfg.speech.frontend) else 'waveforms'}) reads {frontend.input_dim}"
        )
    network = task.build(cfg, Sizes(frontend.out_size, image_dim, vocab_size, epochs, max_chars))
    return FrontEnded(frontend, network)


def check_config(cfg: Config) -> None:
    """Everything a run of `cfg` checks before any corpus work, with what its family uses: the
    config's own checks (vgs.config.check_runnable), the image features where the family uses images
    (present, and of the network model.image.features_from names), and the corpus of a NON-ALIGNED
    speech/text task: nothing the paper's setup names is replaced by a stand-in without a word."""
    try:
        task = task_of(cfg.model)
        images = task.uses_images(cfg.model)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    check_runnable(cfg, images=images)
    frontend = cfg.model.speech.frontend
    if frontend.arch:
        check_frontend(frontend)
        if cfg.train.analysis:
            raise ConfigError(
                "train.analysis probes the speech encoder against MFCC frames and phoneme timings at the MFCC "
                f"frame rate; it does not read an SSL front-end's frames (model.speech.frontend.arch={frontend.arch})"
            )
    if images and cfg.data.image_features and cfg.model.image.encoder != "densenet":
        try:
            check_feature_network(cfg.data.image_features, cfg.model.image.features_from)
        except CorpusError as e:  # an unreadable or missing file: named before any other work
            raise ConfigError(f"data.image_features: {e}") from e
    if task.uses_speech_text_corpus(cfg):
        check_speech_text_source(cfg.data)


def cli_config(base: str, items: list[str], data: str | None = None, skip_bad: bool = False) -> Config:
    """A command line's config (vgs.config.config_from_cli) with model.* keys that its family does
    not read refused: the families know which keys they read."""
    cfg = config_from_cli(base, items, data, skip_bad)
    check_family_keys(cfg.model, parse_cli_overrides(items))
    return cfg
