"""Self-supervised speech front-ends (wav2vec 2.0, HuBERT, WavLM), built with torchaudio's builders.

The upstream model turns a 16 kHz waveform into hidden states at 50 frames per second: state 0 is
what the first transformer layer reads (the CNN's features, projected, plus the positional
convolution), state k is transformer layer k's output.  A read-out makes one feature sequence of
them: the last state, one chosen state, or a learnt softmax-weighted sum of all of them (optionally
each layer-normed first, as SpeechCLIP).  What trains (model.speech.frontend.train):
  frozen     nothing of the upstream (its states are computed once and cached: vgs.data.features;
             with cache=false recomputed from the waveforms every step)
  finetune   the transformer, with the CNN frozen (FaST-VGS, VG-HuBERT)
and model.speech.frontend.reinit_top re-initialises the last k layers (VG-HuBERT: 3), layers keeps
only the first L (FaST-VGS: 8).

Weights (model.speech.frontend.weights): a state-dict file (.pt/.pth read with weights_only=True, or
.safetensors), `bundle:NAME` (torchaudio.pipelines.NAME: downloaded where the machine has a network,
read from torch's hub cache where it has none), or `random` (a random init, asked for by name).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from vgs.config import Config, ConfigError, FrontEndConfig
from vgs.data.featurisers import Featuriser, Mfcc, Waveform

RANDOM = "random"
BUNDLE = "bundle:"
FRAME_HOP = 320  # samples per frame at 16 kHz: the CNN's total stride (50 frames per second)
MIN_SAMPLES = 400  # the CNN's receptive field: a shorter recording gives no frame


def _tiny(**_: Any) -> nn.Module:
    """A small SSL-shaped model for CPU work: the same builder and frame rate, 2 layers of 64."""
    from torchaudio.models import wav2vec2_model

    return wav2vec2_model(
        extractor_mode="group_norm",
        extractor_conv_layer_config=[(128, 400, 80), (128, 4, 4)],
        extractor_conv_bias=False,
        encoder_embed_dim=64,
        encoder_projection_dropout=0.0,
        encoder_pos_conv_kernel=32,
        encoder_pos_conv_groups=4,
        encoder_num_layers=2,
        encoder_num_heads=2,
        encoder_attention_dropout=0.0,
        encoder_ff_interm_features=128,
        encoder_ff_interm_dropout=0.0,
        encoder_dropout=0.0,
        encoder_layer_norm_first=False,
        encoder_layer_drop=0.0,
        aux_num_out=None,
    )


@dataclass(frozen=True)
class Upstream:
    """An architecture: its torchaudio builder, its size, and whether it reads standardised audio."""

    builder: str  # a torchaudio.models function, or "tiny"
    layers: int
    dim: int
    normalize: bool  # large models read each waveform standardised (torchaudio's bundles do the same)
    bundles: tuple[str, ...]  # torchaudio.pipelines bundles of this architecture


UPSTREAMS = {
    "wav2vec2_base": Upstream("wav2vec2_base", 12, 768, False, ("WAV2VEC2_BASE",)),
    "wav2vec2_large": Upstream("wav2vec2_large", 24, 1024, False, ("WAV2VEC2_LARGE",)),
    "wav2vec2_large_lv60k": Upstream("wav2vec2_large_lv60k", 24, 1024, True, ("WAV2VEC2_LARGE_LV60K",)),
    "hubert_base": Upstream("hubert_base", 12, 768, False, ("HUBERT_BASE",)),
    "hubert_large": Upstream("hubert_large", 24, 1024, True, ("HUBERT_LARGE",)),
    "wavlm_base": Upstream("wavlm_base", 12, 768, False, ("WAVLM_BASE", "WAVLM_BASE_PLUS")),
    "wavlm_large": Upstream("wavlm_large", 24, 1024, True, ("WAVLM_LARGE",)),
    "ssl_tiny": Upstream("tiny", 2, 64, False, ()),
}
READOUTS = ("last", "layer", "weighted")
TRAINING = ("frozen", "finetune", "full")


def upstream_of(fe: FrontEndConfig) -> Upstream:
    if fe.arch not in UPSTREAMS:
        raise ConfigError(f"model.speech.frontend.arch must be one of {', '.join(UPSTREAMS)}, got '{fe.arch}'")
    return UPSTREAMS[fe.arch]


def check_frontend(fe: FrontEndConfig) -> None:
    """Every front-end key, before anything is built or loaded."""
    if not fe.arch:
        return
    up = upstream_of(fe)
    if fe.readout not in READOUTS:
        raise ConfigError(f"model.speech.frontend.readout must be one of {', '.join(READOUTS)}, got '{fe.readout}'")
    if fe.train not in TRAINING:
        raise ConfigError(f"model.speech.frontend.train must be one of {', '.join(TRAINING)}, got '{fe.train}'")
    kept = kept_layers(fe)
    if not 0 <= fe.layers <= up.layers:
        raise ConfigError(f"model.speech.frontend.layers must be 0 (all) to {up.layers} for {fe.arch}, got {fe.layers}")
    if fe.readout == "layer" and not 0 <= fe.layer <= kept:
        raise ConfigError(
            f"model.speech.frontend.layer must be 0 to {kept} (the kept layers of {fe.arch}), got {fe.layer}"
        )
    if not 0 <= fe.reinit_top <= kept:
        raise ConfigError(f"model.speech.frontend.reinit_top must be 0 to {kept}, got {fe.reinit_top}")
    if fe.reinit_top and fe.train == "frozen":
        raise ConfigError("model.speech.frontend.reinit_top re-initialises layers that then train: set train=finetune")
    if not fe.cache and fe.train != "frozen":
        raise ConfigError("model.speech.frontend.cache=false is for a frozen front-end (a trained one is never cached)")
    if not fe.weights:
        raise ConfigError(missing_weights_message(fe))


def kept_layers(fe: FrontEndConfig) -> int:
    return fe.layers or upstream_of(fe).layers


def cached(fe: FrontEndConfig) -> bool:
    """A frozen upstream's states are computed once per corpus (vgs.data.features), not per step."""
    return bool(fe.arch) and fe.train == "frozen" and fe.cache


def states_read(fe: FrontEndConfig) -> tuple[int, ...]:
    """The hidden states the read-out reads (0: the transformer's input, k: layer k)."""
    kept = kept_layers(fe)
    if fe.readout == "last":
        return (kept,)
    if fe.readout == "layer":
        return (fe.layer,)
    return tuple(range(kept + 1))


def missing_weights_message(fe: FrontEndConfig) -> str:
    up = UPSTREAMS.get(fe.arch)
    bundle = up.bundles[0] if up and up.bundles else "HUBERT_BASE"
    return (
        f"model.speech.frontend.weights is empty for arch={fe.arch}. Give one of:\n"
        f"  - a state-dict file: model.speech.frontend.weights=/path/{fe.arch}.pt (.pt/.pth, read with "
        f"weights_only=True, or .safetensors);\n"
        f"  - bundle:{bundle}: torchaudio's pretrained weights, downloaded once into torch's hub cache "
        f"(~/.cache/torch/hub/checkpoints/, or $TORCH_HOME) where the machine has a network; offline, copy "
        f"the bundle's file there from a machine that has it;\n"
        f"  - random: a random init, by name (no pretrained model).\n"
        f"A fairseq or HuggingFace checkpoint converts once on your side: model = torchaudio.models.wav2vec2."
        f"utils.import_fairseq_model(fairseq_model) (or import_huggingface_model(hf_model)); "
        f"torch.save(model.state_dict(), '{fe.arch}.pt')."
    )


def build_upstream(fe: FrontEndConfig) -> nn.Module:
    """The architecture at random init (no download)."""
    up = upstream_of(fe)
    if up.builder == "tiny":
        return _tiny()
    import torchaudio.models

    return getattr(torchaudio.models, up.builder)()


def _bundle_state_dict(name: str) -> dict[str, torch.Tensor]:
    import torchaudio.pipelines

    bundle = getattr(torchaudio.pipelines, name, None)
    if bundle is None or not hasattr(bundle, "_path"):
        raise ConfigError(f"model.speech.frontend.weights=bundle:{name}: torchaudio.pipelines has no such bundle")
    from torchaudio.pipelines._wav2vec2 import utils

    try:  # torch.hub: from its cache (no network needed), else downloaded into it
        return utils._get_state_dict(bundle._path, {"weights_only": True, "progress": False})
    except OSError as e:
        cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(bundle._path).name
        raise ConfigError(
            f"bundle:{name}: its weights are not in torch's hub cache ({cache}) and could not be downloaded "
            f"({e}). Copy {Path(bundle._path).name} there from a machine that has it."
        ) from e


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """A state dict from a file, without running pickled code."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"model.speech.frontend.weights: no such file {file}")
    if file.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError as e:
            raise ConfigError(f"{file}: reading .safetensors needs the safetensors package") from e
        return load_file(str(file))
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # an unpickling error, a zip error: the file is not a plain state dict
        raise ConfigError(f"{file}: not a state dict of tensors ({str(e).splitlines()[0][:200]})") from e
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"{file}: expected a state dict (names -> tensors)")
    return state


def weights_id(fe: FrontEndConfig) -> str:
    """What identifies the weights in a cache key: the file's content hash, the bundle's name, random."""
    if fe.weights == RANDOM or fe.weights.startswith(BUNDLE):
        return fe.weights
    file = Path(fe.weights).expanduser().resolve()
    if not file.is_file():
        raise ConfigError(f"model.speech.frontend.weights: no such file {file}")
    stat = file.stat()
    return "sha256:" + _file_digest(str(file), stat.st_size, stat.st_mtime_ns)


def architecture_digest(fe: FrontEndConfig) -> str:
    """A hash of the architecture's parameter names and shapes (a changed definition is another cache)."""
    with torch.device("meta"):
        shapes = sorted((k, tuple(v.shape)) for k, v in build_upstream(fe).state_dict().items())
    return hashlib.sha256(repr(shapes).encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=16)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    """SHA-256 of a file, once per (path, size, time) in a process (a weights file is hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_upstream(fe: FrontEndConfig, seed: int | None = None, weights: bool = True) -> nn.Module:
    """The upstream with its weights, cut to its kept layers, the top ones re-initialised.  A random
    init draws from torch's generator as it stands (a run's seed), or from `seed` without touching it.
    weights=False: the shapes only (a plan or a check builds it on the meta device)."""
    check_frontend(fe)
    if seed is not None:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return load_upstream(fe, weights=weights)
    model = build_upstream(fe)
    if fe.weights != RANDOM and weights:
        state = (
            _bundle_state_dict(fe.weights[len(BUNDLE) :])
            if fe.weights.startswith(BUNDLE)
            else read_state_dict(fe.weights)
        )
        state = {k: v for k, v in state.items() if not k.startswith("aux.")}  # a CTC head is not ours
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise ConfigError(
                f"model.speech.frontend.weights {fe.weights} does not fit arch={fe.arch}: {str(e).splitlines()[0]}"
            ) from e
    layers = model.encoder.transformer.layers
    kept = kept_layers(fe)
    model.encoder.transformer.layers = nn.ModuleList(list(layers)[:kept])
    for layer in list(model.encoder.transformer.layers)[kept - fe.reinit_top :] if fe.reinit_top else []:
        for m in layer.modules():
            if hasattr(m, "reset_parameters") and m is not layer:
                m.reset_parameters()
    return model


def hidden_states(
    upstream: nn.Module, waveforms: torch.Tensor, lengths: torch.Tensor | None, normalize: bool
) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """States 0..L of (B, S) waveforms: the transformer's input, then each kept layer's output."""
    if normalize:  # standardised per recording over its own samples, as the large models were trained
        mask = _sample_mask(waveforms, lengths)
        n = mask.sum(1, keepdim=True).clamp(min=1)
        mean = (waveforms * mask).sum(1, keepdim=True) / n
        var = (((waveforms - mean) * mask) ** 2).sum(1, keepdim=True) / n
        waveforms = (waveforms - mean) / torch.sqrt(var + 1e-7) * mask
    x, lengths = upstream.feature_extractor(waveforms, lengths)
    x, attention = upstream.encoder._preprocess(x, lengths)
    transformer = upstream.encoder.transformer
    x = transformer._preprocess(x)
    states, position_bias = [x], None
    for layer in transformer.layers:
        x, position_bias = layer(x, attention, position_bias=position_bias)
        states.append(x)
    return states, lengths


def _sample_mask(waveforms: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    if lengths is None:
        return torch.ones_like(waveforms)
    steps = torch.arange(waveforms.size(1), device=waveforms.device)[None, :]
    return (steps < lengths.to(waveforms.device)[:, None]).to(waveforms.dtype)


class Readout(nn.Module):
    """One feature sequence from the hidden states: the one read (last, layer) or a softmax-weighted
    sum of all of them (weights start equal, as SpeechCLIP's), each optionally layer-normed."""

    def __init__(self, kind: str, states: int, layer_norm: bool):
        super().__init__()
        self.kind, self.layer_norm = kind, layer_norm
        self.weights = nn.Parameter(torch.zeros(states)) if kind == "weighted" else None

    def forward(self, states: list[torch.Tensor]) -> torch.Tensor:
        if self.layer_norm:
            states = [F.layer_norm(s, s.shape[-1:]) for s in states]
        if self.weights is None:
            return states[-1] if len(states) > 1 else states[0]
        w = torch.softmax(self.weights, 0)
        return sum(w[k] * s for k, s in enumerate(states))


class SSLFrontEnd(nn.Module):
    """Speech batches -> (B, T, D) features at 50 per second and their lengths.

    Cached (frozen): the batch holds the read states, concatenated per frame (B, T, n * D); only
    the read-out runs here.  Otherwise the batch holds waveforms (B, S, 1) and the upstream runs,
    its CNN frozen (or all of it, frozen and not cached: then it runs without gradients)."""

    def __init__(self, fe: FrontEndConfig, weights: bool = True):
        super().__init__()
        check_frontend(fe)
        up = upstream_of(fe)
        self.arch, self.dim, self.normalize = fe.arch, up.dim, up.normalize
        self.read = states_read(fe)
        self.upstream: nn.Module | None = None
        self.cnn_trains = fe.train == "full"
        self.upstream_trains = fe.train != "frozen"
        if not cached(fe):
            self.upstream = load_upstream(fe, weights=weights)
            for p in self.upstream.feature_extractor.parameters():
                p.requires_grad_(self.cnn_trains)  # finetune: the CNN stays as pretrained (FaST-VGS, VG-HuBERT)
            if not self.upstream_trains:
                self.upstream.requires_grad_(False)
        self.readout = Readout(fe.readout if fe.readout == "weighted" else "one", len(self.read), fe.layer_norm)
        self.out_size = up.dim

    @property
    def input_dim(self) -> int:
        """What a batch's frames hold: the cached states, or one sample."""
        return len(self.read) * self.dim if self.upstream is None else 1

    def forward(self, speech: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.upstream is None:
            states = list(speech.unflatten(-1, (len(self.read), self.dim)).unbind(2))
            return self.readout(states), lengths
        if self.upstream.feature_extractor.training and not self.cnn_trains:
            self.upstream.feature_extractor.eval()  # frozen: its group norm keeps no running statistics anyway
        if not self.upstream_trains:
            self.upstream.eval()  # frozen, not cached: as the cache computes its states (no dropout)
        with torch.set_grad_enabled(self.upstream_trains and torch.is_grad_enabled()):
            all_states, out_len = hidden_states(self.upstream, speech[..., 0], lengths, self.normalize)
        assert out_len is not None
        return self.readout([all_states[k] for k in self.read]), out_len.clamp(min=1)


class FrontEnded(nn.Module):
    """A family's network behind an SSL front-end: every call that reads speech gets the front-end's
    features instead (the contract of vgs.models.contract, unchanged)."""

    def __init__(self, frontend: SSLFrontEnd, network: nn.Module):
        super().__init__()
        self.frontend, self.network = frontend, network
        self.objectives = network.objectives

    def _features(self, batch: dict) -> dict:
        if "speech" not in batch:
            return batch
        speech, lengths = self.frontend(batch["speech"], batch["lengths"])
        return {**batch, "speech": speech, "lengths": lengths}

    def objective(self, batch: dict, objective: str, loss) -> dict[str, torch.Tensor]:
        return self.network.objective(self._features(batch), objective, loss)

    def query(self, batch: dict, beam: int = 1) -> torch.Tensor:
        return self.network.query(self._features(batch), beam)

    def image(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.network.image(pixels)

    def transcribe(self, batch: dict, beam: int = 1) -> list[list[int]]:
        return self.network.transcribe(self._features(batch), beam)

    def match(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        return self.network.match(self._features(batch))

    def query_decoded(self, hyps: list[list[int]], device: torch.device) -> torch.Tensor:
        return self.network.query_decoded(hyps, device)

    def speech_states(self, speech: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.network.speech_states(*self.frontend(speech, lengths))


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameters."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def upstream_parameters(fe: FrontEndConfig) -> int:
    """Parameters of the upstream as kept (for a cached front-end, which the trained model does not hold)."""
    if not fe.arch:
        return 0
    with torch.device("meta"):
        model = build_upstream(fe)
    per_layer = sum(p.numel() for p in model.encoder.transformer.layers[0].parameters())
    total = sum(p.numel() for p in model.parameters())
    return total - per_layer * (upstream_of(fe).layers - kept_layers(fe))


@dataclass
class SSLStates:
    """A featuriser (vgs.data.features) of a frozen front-end's read states: fp16 (frames, n * D) per
    recording, computed once per corpus and keyed by architecture, weights and states."""

    fe: FrontEndConfig
    device: str = "auto"

    def __post_init__(self):
        check_frontend(self.fe)
        self.dim = len(states_read(self.fe)) * upstream_of(self.fe).dim
        # standardised per dimension with the training split's statistics, as MFCCs are: a random or
        # lightly trained upstream's states share a large constant part that hides what differs
        self.hop, self.dtype, self.standardise, self.workers = FRAME_HOP, "float16", True, 1
        self.states = states_read(self.fe)
        self.name = f"ssl-{self.fe.arch}-L{kept_layers(self.fe)}-s{'.'.join(map(str, self.states))}"
        self._model: nn.Module | None = None
        self._device: torch.device | None = None

    def params(self) -> dict[str, Any]:
        return {
            "featuriser": "ssl-states",
            "arch": self.fe.arch,
            "weights": weights_id(self.fe),
            "layers": kept_layers(self.fe),
            "states": list(self.states),
            "standardise": self.standardise,
            "shapes": architecture_digest(self.fe),
        }

    def min_samples(self) -> int:
        return MIN_SAMPLES

    def __getstate__(self) -> dict:
        return {"fe": self.fe, "device": self.device}

    def __setstate__(self, state: dict) -> None:
        self.fe, self.device = state["fe"], state["device"]
        self.__post_init__()

    @torch.no_grad()
    def __call__(self, waveform: torch.Tensor) -> np.ndarray:
        if self._model is None:  # once per process; a random init is seed 0's, the same in every process
            auto = "cuda" if torch.cuda.is_available() else "cpu"
            self._device = torch.device(auto if self.device == "auto" else self.device)
            self._model = load_upstream(self.fe, seed=0).to(self._device).eval()
        assert self._device is not None
        states, _ = hidden_states(self._model, waveform[None].to(self._device), None, upstream_of(self.fe).normalize)
        read = torch.cat([states[k][0] for k in self.states], dim=-1)
        return read.to(torch.float16).cpu().numpy()


def featuriser_for(cfg: Config) -> Featuriser:
    """What a configuration's speech store holds: data.features's MFCCs, a frozen front-end's states
    (cached once per corpus), or the waveforms a fine-tuned front-end reads."""
    fe = cfg.model.speech.frontend
    if not fe.arch:
        return Mfcc(cfg.data.features)
    return SSLStates(fe) if cached(fe) else Waveform()
