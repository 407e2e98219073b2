"""The configuration's typed tree: one dataclass per section (data, model and its parts, train)."""

from __future__ import annotations

from dataclasses import dataclass, field


class ConfigError(ValueError):
    """A configuration that cannot be built; the message names the offending key."""


@dataclass
class FrontEndConfig:
    """The speech front-end (vgs.models.ssl): empty arch = the store's MFCC/FBANK (data.features);
    else a self-supervised model built with torchaudio's builders, read out and trained as below."""

    # wav2vec2_base | wav2vec2_large | wav2vec2_large_lv60k | hubert_base | hubert_large | wavlm_base |
    # wavlm_large | ssl_tiny (2 layers of 64: the CPU size's SSL-shaped model)
    arch: str = ""
    # a state-dict file (.pt/.pth, .safetensors), bundle:NAME (torchaudio.pipelines), or random (by name)
    weights: str = ""
    readout: str = "weighted"  # last | layer | weighted (a learnt softmax-weighted sum of every state)
    layer: int = 0  # readout=layer: the state read (0: the transformer's input, k: layer k's output)
    layer_norm: bool = False  # each state layer-normed before the read-out (SpeechCLIP)
    # frozen: states computed once per corpus and cached (fp16); finetune: the transformer trains, CNN frozen
    train: str = "frozen"
    # frozen: cache the states (default), or false: recompute them from the waveforms every step, unstandardised
    # (no cache disk, e.g. a corpus too large for it; vgs.tools.ssl_speed --epochs times what the cache saves)
    cache: bool = True
    reinit_top: int = 0  # the last k kept layers re-initialised (VG-HuBERT: 3); needs train=finetune
    layers: int = 0  # keep the first L transformer layers (0: all; FaST-VGS: 8)


@dataclass
class TransformerHeadConfig:
    """model.speech.head=transformer (co-embedding only): a light transformer over the front-end's
    frames, pooled by a CLS token or by vectorial attention (SpeechCLIP's: 1 layer of 768, 8 heads)."""

    layers: int = 1  # transformer layers over the front-end's frames
    dim: int = 256  # model width (the frames are projected to it)
    heads: int = 4  # attention heads (dim must divide by it)
    ff: int = 1024  # feed-forward width of each layer
    dropout: float = 0.1  # dropout in each layer
    pool: str = "cls"  # cls | attention


@dataclass
class SpeechConfig:
    """conv1d + BiGRU stack + vectorial attention (Mortazavi 2020 §4.1)."""

    layers: int = 2  # BiGRU layers (the papers' DG<layers>A<latent>)
    conv_channels: int = 64  # channels of the conv1d before the GRUs
    conv_kernel: int = 6  # its kernel width, in frames
    # The paper does not give a stride; >1 shortens the GRU's input (CPU configs use 2-3).
    conv_stride: int = 1
    attention_hidden: int = 128  # hidden size of the attention pooling's MLP
    # vectorial: a weight per step and dimension (Mortazavi 2020 and Higy et al. 2020); scalar: one weight per step
    # (Chrupała 2019 eq. 4-5; three-task's text branches too)
    attention: str = "vectorial"
    # what reads the front-end's frames: gru (conv + BiGRU + attention, the papers') or transformer
    # (model.speech.transformer; the co-embedding family)
    head: str = "gru"
    transformer: TransformerHeadConfig = field(default_factory=TransformerHeadConfig)
    frontend: FrontEndConfig = field(default_factory=FrontEndConfig)


@dataclass
class ImageConfig:
    """DenseNet trained from pixels + global average pool + linear N (Mortazavi 2020 §4.2)."""

    growth_rate: int = 32  # DenseNet's growth rate k (channels each layer adds)
    # String key "6-12-64-48" rather than a tuple so that it survives YAML, Tune and MLflow.
    blocks: str = "6-12-64-48"
    init_features: int = 64  # channels of the stem convolution
    bn_size: int = 4  # bottleneck width, times growth_rate
    # features: a linear map of precomputed, fixed image features (data.image_features; the image side
    # of Higy et al. 2020 and Chrupała 2019), refused without them; densenet: from pixels (Mortazavi
    # 2020); auto: features when data.image_features is set, else densenet.
    encoder: str = "auto"
    features_from: str = ""  # the torchvision model the features come from (named in errors and plans)


@dataclass
class TextConfig:
    """Character text encoder (Higy et al. 2020 §3.1.2): embedding + BiGRU (N/2 per direction) + vectorial
    attention + L2.  `source` picks the text: English transcripts or Japanese translations."""

    source: str = "transcript"  # transcript | translation
    embed: int = 128  # character embedding size
    layers: int = 2  # BiGRU layers
    attention_hidden: int = 128  # hidden size of the attention pooling's MLP


@dataclass
class AsrConfig:
    """Attention encoder-decoder for ASR/SLT (Higy et al. 2020 §3.1.3): conv + BiGRU encoder (`hidden`
    per direction), Bahdanau attention, GRU decoder, character output."""

    encoder_layers: int = 5  # BiGRU layers of the encoder
    hidden: int = 768  # encoder units per direction, and the decoder's
    decoder_layers: int = 1  # GRU layers of the decoder
    embed: int = 64  # previous-character embedding of the decoder
    attention: int = 256  # Bahdanau attention size
    beam: int = 10  # beam width for test decoding (and pipe-seq's training transcripts)
    val_beam: int = 1  # per-epoch validation decoding (1 = greedy: cheap)
    max_chars: int = 300  # decoding stops here if no end-of-sentence came
    length_penalty: float = 0.0  # beams ranked by logprob / length**penalty (0: plain logprob)


@dataclass
class MultitaskConfig:
    """Layer split of the multitask speech encoders (Higy et al. 2020 Table 4 triplets, Chrupała 2019 Table 1):
    shared BiGRU layers, then speech->image layers and the secondary objective's layers (0 = attention only)."""

    shared_layers: int = 4  # BiGRU layers both tasks read
    s2i_layers: int = 1  # speech->image layers on top of them (0: attention only)
    objective_layers: int = 1  # the secondary objective's layers on top of them (0: attention only)


@dataclass
class PipelineConfig:
    """pipe-seq's phases (Higy et al. 2020 §3.2.2): ASR/SLT first, then text-image on its decodings.
    (Until 0.1.0 these were model.mtl.asr_epochs / asr_patience; the old keys still work.)"""

    asr_epochs: int = 0  # epochs of ASR/SLT training before the text-image part (0: half)
    # the ASR/SLT phase ends early once val WER (BLEU) has not improved for this many epochs
    # (training to convergence); its remaining epochs go to the text-image part (0: never)
    asr_patience: int = 0


@dataclass
class ThreeTaskConfig:
    """Chrupała's three-task model (Chrupała 2019 §3, Table 1): layer counts of the shared speech (S)
    and text (T) encoders and of the task encoders S2I, S2T, T2S, T2I; 0 = attention only,
    -1 = ablated (the whole task it serves is left out, Table 1's dot)."""

    speech_layers: int = 2  # S: shared speech encoder layers
    text_layers: int = 1  # T: shared text encoder layers
    s2i: int = 1  # speech->image task layers
    s2t: int = 0  # speech->text task layers (speech side)
    t2s: int = 0  # speech->text task layers (text side)
    t2i: int = 1  # text->image task layers
    # every GRU of the model reads both directions (N/2 units each); False: forward only with N
    # units, as Chrupała 2019's GRUs of 1024 (the chrupala2019 base)
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
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)  # pipe-seq's phases
    # mtl-match's own split (Higy et al. 2020 §3.1.5, after Chrupała 2019): shared 2 x BiGRU, speech->image
    # branch 2 x BiGRU, speech->text branch attention only; widths N/2 per direction
    match: MultitaskConfig = field(
        default_factory=lambda: MultitaskConfig(shared_layers=2, s2i_layers=2, objective_layers=0)
    )
    three: ThreeTaskConfig = field(default_factory=ThreeTaskConfig)


@dataclass
class DataConfig:
    # Corpus directory (Flickr8K Audio, Places or SpokenCOCO layout); empty means the built-in corpus.
    root: str = ""
    layout: str = "auto"  # auto | flickr8k | places | spokencoco | librispeech
    image_dir: str = ""  # folder of image files; empty means look inside root
    builtin_images: int = 2500  # images of the built-in corpus (five spoken captions each)
    builtin_seed: int = 0  # seed of the built-in corpus's scenes, captions and voices
    # Validation and test images of the built-in corpus (0: a tenth of the images each, 250 of 2500;
    # builtin_test=1000 gives the papers' 1000-image test protocol); the rest train.
    builtin_val: int = 0
    builtin_test: int = 0  # test images of the built-in corpus (0: a tenth)
    # Captions per image that keep their Japanese translation in the built-in corpus (it writes
    # all five): 2, as F30kEnt-JP translates two captions per Flickr8K image (Higy et al. 2020 §3.4.1).
    builtin_translated: int = 2
    # White-noise level of the built-in corpus's recordings, a dB range each recording draws from
    # ("20-40": clean speech); lower makes recognition harder (pipeline_vs_mtl: "0-20").
    builtin_snr: str = "20-40"
    features: str = "mortazavi"  # speech features (vgs.data.featurisers): mortazavi | chrupala | chrupala13 | fbank
    # Standardisation of the MFCCs: corpus = the training split's mean and std per dimension (the
    # papers); utterance = each utterance's own mean and std (CMVN: less speaker, faster learning).
    speech_norm: str = "corpus"
    max_frames: int = 8192  # longer utterances are dropped and counted (Mortazavi 2020 §5.1)
    skip_bad: bool = False  # leave out unreadable audio (listed in a report) instead of stopping
    image_resize: int = 256  # images are stored decoded at this size ...
    image_crop: int = 224  # ... and randomly cropped (train) or centre-cropped (eval) to this
    # decoded: a store of uint8 pixels at image_resize, memory-mapped (image_resize² x 3 bytes per image:
    # about 78 GB for Places at 256); files: each image file decoded when a batch needs it (no store,
    # CPU per batch; a corrupt file stops training when first read, not before).
    image_store: str = "decoded"
    store: str = ""  # feature store folder; empty means <VGS_HOME>/store
    # Precomputed image features (.npy + .names.txt, .npz, .parquet or platalea's .pt), keyed by image
    # file name; when set, images are not decoded and the image encoder is a linear layer
    # (Higy et al. 2020 and Chrupała 2019).
    image_features: str = ""
    # F30kEnt-JP per-image Japanese files (replace any raw_jp); English Flickr30k Entities Sentences/
    # folder for matching (empty: a Sentences folder beside or inside it).
    translations: str = ""
    translations_en: str = ""  # the English Sentences/ folder (empty: found beside translations)
    # Textual downsampling of the training split (Higy et al. 2020 §4.4): keep text for this many hours of
    # speech, or this fraction of it (0 = all); speech and images are unchanged.
    text_hours: float = 0.0
    text_fraction: float = 0.0  # ... or keep text for this fraction of the training speech
    text_seed: int = 0  # which captions keep their text
    # Train only on captions that have a translation (speech, image and text): Higy et al. 2020's
    # "reduced English" dataset, and the size of its Japanese experiments; val/test stay whole.
    translated_only: bool = False
    # Data of the speech/text task (three-task, mtl-match; Chrupała 2019 §3.5): aligned = the same captions
    # as the other tasks; nonaligned = disjoint data, the corpus at speech_text_root: a folder (LibriSpeech
    # in the paper) or `builtin` (a second built-in corpus drawn with another seed).  Refused when empty.
    speech_text: str = "aligned"
    speech_text_root: str = ""  # speech_text=nonaligned: its corpus folder, or builtin
    # Phoneme timings of a real corpus for Chrupała 2019's phoneme probe (Table 5; train.analysis):
    # a folder of Montreal Forced Aligner TextGrids or Gentle JSONs named by utterance id, or one JSON
    # {utterance id: [[phoneme, start s, end s], ...]} (vgs.data.forced_alignments).  The built-in
    # corpus needs none: its timings are recomputed from eSpeak NG.
    alignments: str = ""


@dataclass
class TrainConfig:
    epochs: int = 10  # training epochs (a pruning scheduler may stop a trial earlier)
    batch_size: int = 32  # captions per batch; the in-batch negatives of the ranking losses
    lr: float = 2e-4  # Adam's peak learning rate
    scheduler: str = "calr"  # calr | calwr | cyclic | constant | wsd
    min_lr: float = 1e-6  # floor of the cosine schedules, low end of the cyclic one
    calwr_t0: int = 5  # CALWR: epochs in the first cycle
    calwr_t_mult: int = 1  # CALWR: growth of the cycle length
    cyclic_step_epochs: float = 2.0  # cyclic LR: epochs per half cycle
    decay_fraction: float = 0.3  # wsd: the last fraction of the steps anneals (cosine) to min_lr
    clip_grad: float = 0.0  # max gradient norm; 0 turns clipping off
    # Mortazavi 2020's warm second run: the last restart_epochs of train.epochs start again from the
    # best checkpoint so far, with a fresh optimizer at restart_lr_factor x train.lr and their own
    # schedule (DG2A2048: 120 epochs, then 30 from the best at half the rate). 0: one run.
    restart_epochs: int = 0
    restart_lr_factor: float = 0.5  # the warm second run's rate, times train.lr
    # A family with several objectives (multitask, pipelines, three-task) steps each with its own
    # Adam and LR schedule, as the papers' code does (platalea's mtl.experiment): a shared layer's
    # update for one objective is then scaled by that objective's gradient moments, not by the other's
    # larger ones.  false: one Adam over every objective's steps.
    objective_optimizers: bool = True
    margin: float = 0.2  # hinge margin beta (eq. 3)
    # The hinge over a batch's negative pairs: mean (every base but chrupala2019; with Adam and no
    # clipping the scale does not matter) or sum (Chrupała 2019 eq. 1 and its clipping at 2.0)
    loss_reduction: str = "mean"
    # Negatives of the contrastive hinge: other_images (vgs's default: no batch holds two captions of
    # one image, and captions of one image are never each other's negative) or batch (the papers'
    # equations: captions drawn in one shuffled order, every other pair of the batch a negative)
    negatives: str = "other_images"
    augment: bool = True  # random crop + horizontal flip of training images
    # After the last epoch: speaker-ID probe and RSA against text and images (Chrupała 2019 §3.7), on
    # up to 600 validation captions, logged as analysis_* metrics.
    analysis: bool = False
    # Validation captions of the speaker-ID probe and RSA (0: the whole validation set, as Chrupała
    # 2019), and utterances of the phoneme probe, half to train it, half to test (the paper: 2,500 + 2,500).
    analysis_captions: int = 600
    phoneme_utterances: int = 1000  # utterances of the phoneme probe (analysis)
    # labelled frames on each side of the phoneme probe, a seeded sample (0: every frame, as the paper;
    # about 300 a caption, each as wide as the encoder's states: mind the memory)
    phoneme_frames: int = 10000
    # Captions drawn per image per epoch; 0 uses all of them (CPU configs use 1 for short epochs).
    captions_per_image: int = 0
    eval_batch_size: int = 128  # items per batch when embedding for evaluation
    test_at_end: bool = True  # evaluate the best checkpoint on the test split when done
    # also score the test split after every epoch, as epoch_test_* (Mortazavi 2020 Fig. 2; the sweep
    # draws plots/test_per_epoch.png); validation alone still selects the epoch
    test_every_epoch: bool = False
    # also score a fixed sample of this many training images (all their captions) after every epoch,
    # as trainset_* (Mortazavi 2020 §5.2 compares schedulers by R@10 on the training set; an overfit
    # check reads it); 0: never.  It never selects the epoch.
    eval_train_images: int = 0
    seed: int = 0  # seed of initialisation, batch order and augmentation
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
