"""One training loop for every model family.  Never imports Ray: `sweep.py` wraps `fit`.

    python -m vgs.train [--base cpu-small] [--out DIR] [key=value ...]

trains one configuration and prints a line per epoch.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from vgs import distributed
from vgs.config import Config, ConfigError, TrainConfig, check_consistent, cli_config, from_dict, to_dict, vgs_home
from vgs.data.batching import PairSplit, SpeechTextSplit
from vgs.data.prepare import Prepared, prepare, prepare_speech_text, resolve_paths
from vgs.data.records import CorpusError
from vgs.data.text import EOS, Vocabulary, text_of
from vgs.metrics import bleu, cer, cosine_similarity, retrieval, rsa, speaker_probe, text_similarity, wer
from vgs.models.registry import build_model, model_name, text_source, uses_nonaligned_speech_text

# report(metrics, checkpoint_dir): called once per epoch; checkpoint_dir holds last.pt and best.pt
Report = Callable[[dict, Path], None]


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device is 'cuda' but no GPU is visible")
    if name in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())  # a worker's own GPU (set by Ray Train)
    if name == "auto":
        return torch.device("cpu")
    return torch.device(name)


def training_precision(amp: str, device: torch.device):
    """Context for the training step's forward pass: bf16 autocast on a GPU when asked (the value
    is checked with the config: check_consistent)."""
    if amp == "bf16" and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def tune_for_device(model: torch.nn.Module, device: torch.device) -> None:
    """GPU settings of the training step (train.fit and vgs.bench): no-op on CPU."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # conv algorithms tuned per shape (length-bucketed batches repeat)
        model.to(memory_format=torch.channels_last)  # DenseNet's convolutions run faster NHWC on tensor cores


def stable_then_cosine(step: int, total: int, decay_fraction: float, floor: float) -> float:
    """LR factor of the "wsd" schedule: 1 for the first (1 - decay_fraction) of the steps, then a
    cosine down to `floor` at the last step.  A short run keeps its full rate for most of its
    steps (ASHA's rungs compare configurations at the same rate) and ends annealed (less seed noise)."""
    start = round(total * (1 - decay_fraction))
    if step < start or total <= start:
        return 1.0
    progress = min(1.0, (step - start) / max(1, total - start))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """Per-batch LR schedules: CALR, CALWR (T0, Tmult in epochs), cyclic (triangular), constant,
    wsd (constant, then a cosine over the last train.decay_fraction of the steps)."""
    s = torch.optim.lr_scheduler
    steps = max(1, steps_per_epoch)
    if cfg.scheduler == "wsd":
        total, floor = cfg.epochs * steps, cfg.min_lr / cfg.lr
        return s.LambdaLR(opt, lambda step: stable_then_cosine(step, total, cfg.decay_fraction, floor))
    if cfg.scheduler == "calr":
        return s.CosineAnnealingLR(opt, T_max=cfg.epochs * steps, eta_min=cfg.min_lr)
    if cfg.scheduler == "calwr":
        return s.CosineAnnealingWarmRestarts(opt, T_0=cfg.calwr_t0 * steps, T_mult=cfg.calwr_t_mult, eta_min=cfg.min_lr)
    if cfg.scheduler == "cyclic":
        return s.CyclicLR(opt, base_lr=cfg.min_lr, max_lr=cfg.lr, step_size_up=max(1, round(cfg.cyclic_step_epochs * steps)),
                          mode="triangular", cycle_momentum=False)
    if cfg.scheduler == "constant":
        return s.LambdaLR(opt, lambda _: 1.0)
    raise ConfigError(f"train.scheduler must be one of calr, calwr, cyclic, constant, wsd; got '{cfg.scheduler}'")


# task -> (captions it trains on: "all" or "text", needs text tensors, needs image pixels)
TASK_DATA = {"s2i": ("all", False, True), "t2i": ("text", True, True), "asr": ("text", True, False),
             "s2t": ("text", True, False)}


def _batches_in_order(split: PairSplit, captions: np.ndarray, bs: int):
    """Caption index batches sorted by speech length (less padding)."""
    order = captions[np.argsort(split.lengths[captions], kind="stable")]
    for a in range(0, len(order), bs):
        yield order[a:a + bs]


@torch.no_grad()
def evaluate(model, split: PairSplit, cfg: Config, device: torch.device, vocab: Vocabulary | None = None,
             beam: int = 1) -> dict[str, float]:
    """Every metric the family supports on one split: retrieval of images by the family's queries
    (speech; text for text-image; decoded speech for pipelines), WER/CER (ASR) or BLEU/CER (SLT),
    and speech->text R@n (mtl-match).  `beam`: decoding width for ASR/SLT and pipelines."""
    model.eval()
    out: dict[str, float] = {}
    text_query = model.query_kind == "text"
    if model.has_images:
        captions = split.text_captions if text_query else np.arange(len(split))
        queries = embed_queries(model, split, cfg, device, captions, beam)
        # the images that have a caption among these, and each caption's index into them
        image_rows, own = np.unique(split.image_of_caption[captions], return_inverse=True)
        images = embed_images(model, split, cfg, device, image_rows)
        scores = retrieval(queries, images, own)
        if text_query:
            scores = {k.replace("s2i", "t2i").replace("i2s", "i2t"): v for k, v in scores.items()}
        out.update(scores)
        out["r10"] = scores["t2i_r10" if text_query else "s2i_r10"]
        out["images"] = float(len(image_rows))  # candidates of a query: R@k of a random ranking is k / images
    if model.decodes:
        hyps = [vocab.decode(h) for h in decode_captions(model, split, cfg, device, split.text_captions, beam)]
        refs = [vocab.decode(split.texts[i]) for i in split.text_captions]
        out["cer"] = cer(refs, hyps)
        if split.text_source == "transcript":
            out["wer"] = wer(refs, hyps)
        else:
            out["bleu"] = bleu(refs, hyps, tokenize="char")
        out["examples"] = json.dumps([{"ref": r, "hyp": h} for r, h in zip(refs[:3], hyps[:3])], ensure_ascii=False)
    if "s2t" in model.tasks and len(split.text_captions):
        speech, text = embed_pairs(model, split, cfg, device, split.text_captions)
        s2t = retrieval(speech, text, np.arange(len(speech)))
        out.update({f"s2t_{k[4:]}": v for k, v in s2t.items() if k.startswith("s2i_")})
    return out


# Evaluation helpers: with several workers each rank computes its shard of the captions/images and
# the results are gathered back in order (vgs.distributed), so every rank scores the whole split.


def _my_caption_batches(split: PairSplit, captions: np.ndarray, cfg: Config) -> tuple[int, list]:
    """This rank's shard of `captions`: its size, and its length-sorted evaluation batches, each as
    (rows of the shard's output it fills, caption indices)."""
    mine = distributed.shard(captions)
    position = {c: k for k, c in enumerate(mine)}
    return len(mine), [([position[c] for c in idx], idx)
                       for idx in _batches_in_order(split, mine, cfg.train.eval_batch_size)]


def embed_queries(model, split: PairSplit, cfg: Config, device: torch.device, captions: np.ndarray,
                  beam: int = 1) -> np.ndarray:
    """Joint-space embeddings of the captions' queries (speech, text or decoded speech)."""
    text_query = model.query_kind == "text"
    n, batches = _my_caption_batches(split, captions, cfg)
    out = np.empty((n, cfg.model.latent), np.float32)
    for rows, idx in batches:
        batch = _to(split.batch(idx, cfg.data.image_crop, images=False, text=text_query), device)
        out[rows] = model.query(batch, beam).float().cpu().numpy()
    return distributed.gather_rows(out, len(captions))


def embed_images(model, split: PairSplit, cfg: Config, device: torch.device, rows: np.ndarray) -> np.ndarray:
    mine = distributed.shard(rows)
    out = np.empty((len(mine), cfg.model.latent), np.float32)
    bs = cfg.train.eval_batch_size
    for a in range(0, len(mine), bs):
        part = mine[a:a + bs]
        out[a:a + len(part)] = model.image(split.pixels(part, cfg.data.image_crop).to(device)).float().cpu().numpy()
    return distributed.gather_rows(out, len(rows))


def embed_pairs(model, split: PairSplit, cfg: Config, device: torch.device,
                captions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """mtl-match / three-task: (speech, text) embeddings of the captions from model.match."""
    n, batches = _my_caption_batches(split, captions, cfg)
    speech = np.empty((n, cfg.model.latent), np.float32)
    text = np.empty_like(speech)
    for rows, idx in batches:
        s_emb, t_emb = model.match(_to(split.batch(idx, cfg.data.image_crop, images=False, text=True), device))
        speech[rows], text[rows] = s_emb.float().cpu().numpy(), t_emb.float().cpu().numpy()
    return distributed.gather_rows(speech, len(captions)), distributed.gather_rows(text, len(captions))


def decode_captions(model, split: PairSplit, cfg: Config, device: torch.device, captions: np.ndarray,
                    beam: int) -> list[list[int]]:
    """Character ids decoded from each caption's speech (ASR/SLT), in the order of `captions`."""
    n, batches = _my_caption_batches(split, captions, cfg)
    hyps: list = [None] * n
    for rows, idx in batches:
        batch = _to(split.batch(idx, cfg.data.image_crop, images=False), device)
        for row, h in zip(rows, model.transcribe(batch, beam)):
            hyps[row] = h
    return distributed.gather_objects(hyps, len(captions))


@torch.no_grad()
def analyse(model, split: PairSplit, cfg: Config, device: torch.device, limit: int = 600) -> dict[str, float]:
    """Seed 004 §3.7 / Tables 3-4 on (at most `limit`) validation captions: speaker-ID probe
    accuracy on the speech->image embeddings, and RSA of their similarities with the input (mean
    standardised MFCCs), the text (normalised Levenshtein) and their images' embeddings; the same
    for the speech->text branch where the family has one (analysis_s2t_*), and the image space's
    own RSA with the MFCCs and the text (Table 4's last row)."""
    model.eval()
    captions = np.random.default_rng(0).permutation(len(split))[:limit]
    captions.sort()
    queries = embed_queries(model, split, cfg, device, captions, beam=1)
    images = cosine_similarity(embed_images(model, split, cfg, device, split.image_of_caption[captions]))
    spaces = {"mfcc": cosine_similarity(np.stack([split.speech.normalised(split.utt_ids[c]).mean(0) for c in captions])),
              "text": text_similarity([split.transcripts[c] for c in captions]), "image": images}
    out = {"analysis_speaker_acc": speaker_probe(queries, [split.speakers[c] for c in captions]),
           **{f"analysis_rsa_{k}": rsa(cosine_similarity(queries), v) for k, v in spaces.items()},
           "analysis_image_rsa_mfcc": rsa(images, spaces["mfcc"]), "analysis_image_rsa_text": rsa(images, spaces["text"])}
    if "s2t" in model.tasks and len(split.text_captions):
        with_text = np.intersect1d(captions, split.text_captions)
        if len(with_text) > 2:
            keep = np.searchsorted(captions, with_text)
            s2t = cosine_similarity(embed_pairs(model, split, cfg, device, with_text)[0])
            out.update({f"analysis_s2t_rsa_{k}": rsa(s2t, v[np.ix_(keep, keep)]) for k, v in spaces.items()})
    return out


def _to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) for k, v in batch.items()}


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def cap_decoding(cfg: Config, train_split: PairSplit) -> None:
    """Decoding stops at model.asr.max_chars or at twice the longest training text, whichever is
    shorter: an undertrained decoder that never emits </s> then costs little."""
    lengths = [len(t) for t in train_split.texts if t is not None]
    if lengths:
        cfg.model.asr.max_chars = min(cfg.model.asr.max_chars, 2 * max(lengths))


def training_vocabulary(data: Prepared, source: str | None, extra=None) -> Vocabulary | None:
    """Characters of the training text (and of the non-aligned speech/text corpus, if any)."""
    if source is None:
        return None
    utts = data.corpus.split("train") + (extra.split("train") if extra is not None else [])
    return Vocabulary.from_texts(text_of(u, source) for u in utts)


def epoch_plan(model, splits: dict[str, PairSplit], cfg: Config, epoch: int,
               rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """(task, caption batch) in training order: one batch per task in turn, each task's data
    shuffled independently.  How long the epoch is follows the family's epoch_rule: the first
    task's batches ("first": a shorter task starts over, reshuffled, so the speech-image task
    sees all its data whatever the amount of text) or the fewest of any task ("shortest").
    splits: the training data of each task."""
    tasks = model.tasks_at(epoch)

    def batches(k: int, task: str, task_rng: np.random.Generator) -> list[np.ndarray]:
        which, split = TASK_DATA[task][0], splits[task]
        return split.epoch_batches(task_rng, cfg.train.batch_size, cfg.train.captions_per_image,
                                   allowed=None if which == "all" else split.text_captions)

    per_task = [batches(k, task, rng if k == 0 else np.random.default_rng([cfg.train.seed, epoch, k]))
                for k, task in enumerate(tasks)]
    if not all(per_task):
        raise ConfigError(f"epoch {epoch}: task(s) {', '.join(t for t, b in zip(tasks, per_task) if not b)} have no "
                          f"training batches (no text for data.text_*/model.text.source, or too few captions)")
    n = len(per_task[0]) if getattr(model, "epoch_rule", "first") == "first" else min(map(len, per_task))
    for k, task in enumerate(tasks):
        cycle = 1
        while len(per_task[k]) < n:  # its data again, in a new order
            per_task[k] = per_task[k] + batches(k, task, np.random.default_rng([cfg.train.seed, epoch, k, cycle]))
            cycle += 1
    return [(task, per_task[k][i]) for i in range(n) for k, task in enumerate(tasks)]


def training_phases(model, epochs: int) -> list[tuple[int, int]]:
    """(first, last) epoch of each run of epochs that train the same tasks: one phase for most
    families, two for pipe-seq (ASR/SLT, then text-image).  Each phase has its own LR schedule."""
    phases: list[tuple[int, int]] = []
    for epoch in range(1, epochs + 1):
        if phases and model.tasks_at(epoch) == model.tasks_at(phases[-1][0]):
            phases[-1] = (phases[-1][0], epoch)
        else:
            phases.append((epoch, epoch))
    return phases


def with_restart(phases: list[tuple[int, int]], restart_epochs: int) -> list[tuple[int, int]]:
    """The phases with the last `restart_epochs` epochs split off as a phase of their own (the
    warm second run, train.restart_epochs)."""
    if restart_epochs <= 0:
        return phases
    first_restart = phases[-1][1] - restart_epochs + 1
    out = []
    for first, last in phases:
        if first < first_restart <= last:
            out += [(first, first_restart - 1), (first_restart, last)]
        else:
            out.append((first, last))
    return out


def phase_of(phases: list[tuple[int, int]], epoch: int) -> tuple[int, int]:
    return next((first, last) for first, last in phases if first <= epoch <= last)


class TrialOutOfMemory(RuntimeError):
    """The configuration does not fit in the device's memory; the message says which knobs to turn."""


def training_data(cfg: Config, data: Prepared | None = None, quiet: bool = False):
    """(data, text source, vocabulary, training split of each task, validation split) of `cfg`;
    prepares the corpus and its stores where `data` is not given.  May lower
    cfg.model.asr.max_chars to the training text's longest caption (cap_decoding)."""
    try:
        source = text_source(cfg.model)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    data = dataclasses.replace(data or prepare(cfg.data, quiet=quiet), speech_norm=cfg.data.speech_norm)
    speech_text = None
    if uses_nonaligned_speech_text(cfg):
        speech_text = prepare_speech_text(cfg.data, quiet=quiet)
    vocab = training_vocabulary(data, source, speech_text[0] if speech_text else None)
    train_split = PairSplit(data, "train", source, vocab)
    val_split = PairSplit(data, "val", source, vocab)
    cap_decoding(cfg, train_split)
    splits = {task: train_split for task in TASK_DATA}
    if speech_text:
        splits["s2t"] = SpeechTextSplit(*speech_text, "train", source, vocab, cfg.data.speech_norm)
    return data, source, vocab, splits, val_split


def fit(cfg: Config, report: Report | None = None, out_dir: str | Path | None = None,
        resume: str | Path | None = None, data: Prepared | None = None, quiet: bool = False) -> dict:
    """Train `cfg`; evaluate on val every epoch; keep the best epoch by the family's selection
    metric (val R@10 of its queries -> images; WER for ASR, BLEU for SLT).

    out_dir receives last.pt (full training state, for resuming) and best.pt (state_dict and
    resolved config).  resume: a folder with a last.pt to continue from.  Returns the final
    summary (best val metrics, and test metrics of the best epoch if train.test_at_end).
    Running out of GPU (or CPU) memory raises TrialOutOfMemory naming the configuration."""
    try:
        return _fit(cfg, report, out_dir, resume, data, quiet)
    except RuntimeError as e:  # torch.OutOfMemoryError (CUDA) is a RuntimeError too
        where = "GPU" if isinstance(e, torch.OutOfMemoryError) else \
            "CPU" if "can't allocate memory" in str(e) or "not enough memory" in str(e) else None
        if where is None:
            raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # trials packed on the same GPU get the memory back at once
        m = cfg.model
        raise TrialOutOfMemory(
            f"out of {where} memory: {model_name(m)} (model.latent={m.latent}, model.speech.layers="
            f"{m.speech.layers}) with train.batch_size={cfg.train.batch_size} on {cfg.train.device}: "
            f"{str(e).splitlines()[0][:300]}. Lower train.batch_size or the model size, set train.amp=bf16, "
            f"cap data.max_frames, or give each trial more of the device (--resources gpu=1)") from None


def _fit(cfg: Config, report: Report | None, out_dir: str | Path | None, resume: str | Path | None,
         data: Prepared | None, quiet: bool) -> dict:
    cfg = from_dict(to_dict(cfg))  # private copy
    cfg.data = resolve_paths(cfg.data)
    check_consistent(cfg)  # before any corpus or feature work
    lead = distributed.rank() == 0  # prints, and writes the resumable last.pt
    quiet = quiet or not lead
    torch.set_num_threads(max(1, cfg.train.threads))
    device = pick_device(cfg.train.device)
    data, source, vocab, splits, val_split = training_data(cfg, data, quiet)
    train_split = splits["s2i"]

    _seed_everything(cfg.train.seed)
    try:
        model = build_model(cfg.model, data.speech.dim, data.images.feature_dim, len(vocab) if vocab else 0,
                            cfg.train.epochs).to(device)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    metric, mode = model.selection(source)
    better = (lambda a, b: a > b) if mode == "max" else (lambda a, b: a < b)
    tune_for_device(model, device)
    precision = training_precision(cfg.train.amp, device)
    stepper = data_parallel(model, device, cfg.train.gather_negatives)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    phases = with_restart(training_phases(model, cfg.train.epochs), cfg.train.restart_epochs)
    restart_at = cfg.train.epochs - cfg.train.restart_epochs + 1 if cfg.train.restart_epochs else None

    def phase_scheduler(epoch: int):
        """The LR schedule of the phase that starts at `epoch`, over that phase's own epochs."""
        first, last = phase_of(phases, epoch)
        steps = len(epoch_plan(model, splits, cfg, first, np.random.default_rng(0)))
        lr = cfg.train.lr * (cfg.train.restart_lr_factor if restart_at and first >= restart_at else 1.0)
        for group in opt.param_groups:  # torch's cosine schedules continue from the current rate ...
            group["lr"] = group["initial_lr"] = lr  # ... and every schedule scales the first one's initial_lr
        return make_scheduler(opt, dataclasses.replace(cfg.train, epochs=last - first + 1, lr=lr), steps)

    sched, saved_schedule = None, None  # created at each phase's first epoch, in the loop

    out = Path(out_dir) if out_dir else new_run_dir()
    out.mkdir(parents=True, exist_ok=True)
    start_epoch, best = 1, {"epoch": 0, metric: -math.inf if mode == "max" else math.inf}
    seconds_total = 0.0  # training + validation time of every epoch so far (the trial's compute)
    if resume and (Path(resume) / "last.pt").exists():
        # tensors and plain data only: a checkpoint on shared storage cannot run code in the loader
        state = torch.load(Path(resume) / "last.pt", map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start_epoch, best = state["epoch"] + 1, state["best"]
        saved_schedule = (state["epoch"], state["scheduler"])
        seconds_total = state.get("seconds_total", 0.0)
        if Path(resume).resolve() != out.resolve():
            for name in ("best.pt", DECODED_TRAIN, ASR_BEST):
                if (Path(resume) / name).exists():
                    (out / name).write_bytes((Path(resume) / name).read_bytes())

    summary: dict = {}
    name = model_name(cfg.model)
    for epoch in range(start_epoch, cfg.train.epochs + 1):
        t0 = time.time()
        if getattr(model, "sequential", False) and "t2i" in model.tasks_at(epoch):
            if epoch == model.asr_epochs + 1 and (out / ASR_BEST).exists():  # the ASR phase's best epoch
                model.recognizer.load_state_dict(
                    torch.load(out / ASR_BEST, map_location=device, weights_only=True)["recognizer"])
            use_decoded_training_text(model, train_split, cfg, device, vocab, out, quiet)
        if epoch == restart_at:  # the warm second run: from the best epoch so far, a fresh optimizer
            model.load_state_dict(torch.load(out / "best.pt", map_location=device, weights_only=True)["model"])
            opt.state.clear()
        if sched is None or phase_of(phases, epoch)[0] == epoch:
            sched = phase_scheduler(epoch)  # a new phase (pipe-seq's text-image part) anneals on its own
            if saved_schedule and phase_of(phases, saved_schedule[0]) == phase_of(phases, epoch):
                sched.load_state_dict(saved_schedule[1])  # resumed mid-phase: where it was
                for group, lr in zip(opt.param_groups, sched.get_last_lr()):
                    group["lr"] = lr  # and the rate it had (making the scheduler set its own)
        model.train()
        rng = np.random.default_rng([cfg.train.seed, epoch])  # per-epoch stream: resuming replays it exactly
        torch.manual_seed(cfg.train.seed * 100_003 + epoch)
        losses: dict[str, list[float]] = {}
        for task, idx in epoch_plan(model, splits, cfg, epoch, rng):
            if len(idx) < distributed.world():  # every rank needs a row (same decision on all ranks)
                continue
            _, needs_text, needs_images = TASK_DATA[task]
            batch = _to(splits[task].batch(distributed.shard(idx), cfg.data.image_crop,
                                          rng if cfg.train.augment else None, text=needs_text,
                                          images=needs_images), device)
            with precision:
                terms = stepper(batch, cfg.train.margin, task)
            loss = sum(terms.values())
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{task} loss became {loss.item()} at epoch {epoch}; lower train.lr "
                                         f"(now {cfg.train.lr}) or set train.clip_grad")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.train.clip_grad > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.clip_grad)
            opt.step()
            sched.step()
            for k, v in terms.items():
                losses.setdefault(k, []).append(v.item())
        train_seconds = distributed.max_over_ranks(time.time() - t0)
        val = evaluate(model, val_split, cfg, device, vocab, beam=cfg.model.asr.val_beam)
        examples = val.pop("examples", None)
        val = {f"val_{k}": v for k, v in val.items()}
        # per-rank means of each task's loss, averaged over ranks (all ranks ran the same batches)
        mean_loss = distributed.mean_over_ranks({"train_loss": float(np.mean([x for v in losses.values() for x in v])),
                                                 **{f"train_{k}_loss": float(np.mean(v)) for k, v in losses.items()}})
        metrics = {"epoch": epoch, **mean_loss,
                   **{f"train_{k}_batches": len(v) for k, v in losses.items()},
                   "lr": opt.param_groups[0]["lr"], "train_seconds": train_seconds,
                   "epoch_seconds": time.time() - t0, "workers": distributed.world(), **val}
        if getattr(model, "sequential", False) and model.tasks_at(epoch) == ("asr",):
            keep_best_recognizer(model, val, out, epoch)  # every rank, its own folder (as best.pt)
        if better(val[metric], best[metric]):
            best = {"epoch": epoch, **val}
            # every rank keeps best.pt (its own folder): all of them score the test split at the end
            _save(out / "best.pt", {"model": model.state_dict(), "config": to_dict(cfg), "model_name": name,
                                    "epoch": epoch, "metrics": val, "vocab": vocab.chars if vocab else None})
        metrics.update(selected_metrics(best, metric))
        seconds_total += metrics["epoch_seconds"]
        metrics["seconds_total"] = seconds_total
        if lead:
            _save(out / "last.pt", {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                    "scheduler": sched.state_dict(), "epoch": epoch, "best": best,
                                    "config": to_dict(cfg), "seconds_total": seconds_total})
        analysis = cfg.train.analysis and model.has_images and model.query_kind == "speech"
        if epoch == cfg.train.epochs and (cfg.train.test_at_end or analysis):
            best_model = load_best(out / "best.pt", cfg, data, device, vocab)  # test and analyses: best epoch
            if cfg.train.test_at_end:
                metrics.update(test_scores(best_model, cfg, data, device, vocab))
                metrics.update(beam_val_scores(best_model, val_split, cfg, device, vocab))
            if analysis:
                metrics.update(analyse(best_model, val_split, cfg, device))
        if not quiet:
            shown = " ".join(f"{k[4:]} {val[k]:.3f}" for k in ("val_s2i_r10", "val_i2s_r10", "val_t2i_r10",
                                                                 "val_s2t_r10", "val_wer", "val_bleu", "val_cer")
                             if k in val)
            print(f"[{name}] epoch {epoch}/{cfg.train.epochs} loss {metrics['train_loss']:.4f} val {shown} "
                  f"({metrics['epoch_seconds']:.1f} s)", file=sys.stderr, flush=True)
            if examples:
                first = json.loads(examples)[0]
                print(f"    ref: {first['ref']}\n    hyp: {first['hyp']}", file=sys.stderr, flush=True)
        summary = metrics
        if report is not None:
            report(metrics, out)
    return summary


def selected_metrics(best: dict, metric: str) -> dict:
    """What a trial reports about its selected epoch: best_epoch, best_<metric> (the selection
    metric's best so far) and sel_val_* (every validation score at that epoch: image->speech R@10
    at the epoch chosen by speech->image is not image->speech's own best, so it is not named so)."""
    return {"best_epoch": best["epoch"], f"best_{metric}": best[metric],
            **{f"sel_{k}": v for k, v in best.items() if k.startswith("val_")}}


DECODED_TRAIN = "decoded_train.json"
ASR_BEST = "asr_best.pt"  # pipe-seq: the recognizer of its ASR/SLT phase's best epoch


def keep_best_recognizer(model, val: dict, out: Path, epoch: int) -> None:
    """pipe-seq's stopping rule for its ASR/SLT phase (seed 003 trains ASR to convergence first):
    keep the recognizer of the phase's best epoch by validation WER (BLEU for SLT); the text-image
    phase starts from it, and decodes the training speech with it, not with the last epoch's."""
    key, sign = ("val_wer", -1.0) if "val_wer" in val else ("val_bleu", 1.0)
    path = out / ASR_BEST
    if path.exists() and sign * val[key] <= sign * torch.load(path, weights_only=True)["score"]:
        return
    _save(path, {"recognizer": model.recognizer.state_dict(), "score": float(val[key]), "epoch": epoch, "metric": key})


class _Objective(torch.nn.Module):
    """DDP synchronises gradients of what runs through forward(): route the family's objective there."""

    def __init__(self, family: torch.nn.Module):
        super().__init__()
        self.family = family

    def forward(self, batch: dict, margin: float, task: str) -> dict[str, torch.Tensor]:
        return self.family.objective(batch, margin, task)


def data_parallel(model: torch.nn.Module, device: torch.device, gather_negatives: bool):
    """The callable that computes a training step's loss terms: the family's objective, wrapped in
    DDP when this process is one of several workers (torch.distributed initialised, e.g. by Ray
    Train).  Multitask families train different parameters in turn: DDP must look for unused ones."""
    distributed.set_gather_negatives(gather_negatives)
    if distributed.world() == 1:
        return model.objective
    from torch.nn.parallel import DistributedDataParallel

    if device.type == "cuda":  # batch statistics over the global batch, as one worker would see them
        torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return DistributedDataParallel(_Objective(model), device_ids=[device.index] if device.type == "cuda" else None,
                                   find_unused_parameters=len(model.tasks) > 1)


def use_decoded_training_text(model, split: PairSplit, cfg: Config, device: torch.device, vocab: Vocabulary,
                              out: Path, quiet: bool) -> None:
    """pipe-seq: decode every training utterance with beam model.asr.beam once the ASR/SLT phase
    is over, and train the text-image part on those transcripts (cached in out/ for resume)."""
    if getattr(split, "decoded", False):
        return
    path = out / DECODED_TRAIN
    if path.exists():
        texts = json.loads(path.read_text())
    else:
        model.eval()
        t0 = time.time()
        with torch.no_grad():
            hyps = decode_captions(model, split, cfg, device, np.arange(len(split)), cfg.model.asr.beam)
        texts = [list(h) + [EOS] for h in hyps]
        path.write_text(json.dumps(texts))
        if not quiet:
            print(f"pipe-seq: decoded {len(texts)} training utterances (beam {cfg.model.asr.beam}) in "
                  f"{time.time() - t0:.0f} s; the text-image part now trains on them", file=sys.stderr)
    split.texts = texts
    split.text_captions = np.arange(len(split))  # all training speech, as in seed 003 §3.2.2
    split.decoded = True


def load_best(best_path: Path, cfg: Config, data: Prepared, device: torch.device, vocab: Vocabulary | None):
    """The model of the best epoch (best.pt) in eval mode."""
    model = build_model(cfg.model, data.speech.dim, data.images.feature_dim, len(vocab) if vocab else 0,
                        cfg.train.epochs).to(device)
    model.load_state_dict(torch.load(best_path, map_location=device, weights_only=True)["model"])
    return model.eval()


def test_scores(model, cfg: Config, data: Prepared, device: torch.device, vocab: Vocabulary | None) -> dict[str, float]:
    """Test-split metrics of a model, decoding with beam model.asr.beam."""
    split = PairSplit(data, "test", text_source(cfg.model), vocab)
    scores = evaluate(model, split, cfg, device, vocab, beam=cfg.model.asr.beam)
    scores.pop("examples", None)
    return {f"test_{k}": v for k, v in scores.items()}


def beam_val_scores(model, split: PairSplit, cfg: Config, device: torch.device,
                    vocab: Vocabulary | None) -> dict[str, float]:
    """beam_val_*: the selected epoch's model on the validation split, decoding with beam
    model.asr.beam, as the papers' tables decode (beam 10).  The per-epoch val_wer / val_bleu
    decode with model.asr.val_beam (1: greedy, cheap); the two are never mixed under one name.
    Empty for families that decode nothing, or when both beams are the same."""
    if not model.decodes or cfg.model.asr.beam == cfg.model.asr.val_beam:
        return {}
    scores = evaluate(model, split, cfg, device, vocab, beam=cfg.model.asr.beam)
    scores.pop("examples", None)
    return {f"beam_val_{k}": v for k, v in scores.items() if k != "images"}


def new_run_dir() -> Path:
    """<VGS_HOME>/runs/<time>, claimed by creating it: two runs started in the same second (vgs
    calibrate trains two at once) get <time> and <time>-2 instead of one folder, where one had
    loaded the other's best.pt."""
    from vgs.storage import claim_folder

    return claim_folder(vgs_home() / "runs", time.strftime("%Y%m%d-%H%M%S"))


def _plain(x):
    """Numpy scalars -> Python numbers, recursively: torch.load(weights_only=True) takes only
    tensors and plain Python data."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_plain(v) for v in x)
    if isinstance(x, np.generic):
        return x.item()
    return x


def _save(path: Path, obj: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(_plain(obj), tmp)
    tmp.replace(path)  # a crash mid-write never leaves a truncated checkpoint


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vgs.train", description="Train one configuration (no Ray).")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. model.speech.layers=3 train.epochs=10")
    p.add_argument("--base", default="cpu-small", help="named base config: cpu-small, cpu-tiny, cpu-text, paper, seed003")
    p.add_argument("--data", default=None, help="corpus folder (Flickr8K Audio layout); default: built-in corpus")
    p.add_argument("--out", default=None, help="checkpoint folder (default: .vgs/runs/<time>)")
    p.add_argument("--resume", action="store_true", help="continue from --out/last.pt")
    p.add_argument("--skip-bad", action="store_true", help="leave out unreadable audio files (with a report)")
    p.add_argument("--json", action="store_true", help="print the final metrics as JSON on stdout")
    a = p.parse_intermixed_args(argv)  # overrides may come before or after options
    try:
        cfg = cli_config(a.base, a.overrides, a.data, a.skip_bad)
        summary = fit(cfg, out_dir=a.out, resume=a.out if a.resume else None)
    except (ConfigError, CorpusError, FileExistsError, FloatingPointError, TrialOutOfMemory) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.json:
        print(json.dumps(summary, indent=1))
    else:
        keys = [k for k in summary if k.startswith(("sel_val_", "test_"))]
        print("  ".join(f"{k}={summary[k]:.3f}" if not math.isnan(summary[k]) else f"{k}=nan" for k in keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
