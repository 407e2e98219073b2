"""Use a trained run: retrieve images for a spoken query, captions for an image, or write the
embeddings of a corpus.

    python -m vgs.results.retrieve --run RUN --wav FILE [--images DIR] [-k 10]
    python -m vgs.results.retrieve --run RUN --image FILE [-k 10]
    python -m vgs.results.retrieve embed --run RUN [--data DIR] --out FILE.parquet

RUN is a checkpoint (best.pt, or a folder holding it), an MLflow run id (its checkpoint/best.pt),
or a registered model: models:/NAME, models:/NAME/VERSION or models:/NAME@ALIAS (a sweep's best
trial registered with `vgs sweep ... --register NAME`, or `register_best`).  The model meets the
data as it was trained: its config names the corpus and features; --data points at another copy
of the corpus (or another corpus of the same layout).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vgs.cli_options import add_tracking_uri
from vgs.config import Config, ConfigError, apply_overrides, existing_tracking_uri, from_dict, vgs_home
from vgs.data.batching import PairSplit, centre_crop, standardise_pixels
from vgs.data.featurisers import check_recording_length, load_audio
from vgs.data.image_store import _load_image
from vgs.data.prepare import prepare
from vgs.data.records import CorpusError
from vgs.data.text import Vocabulary
from vgs.device import pick_device
from vgs.inference import embed_images, embed_queries
from vgs.log import get_logger, quiet_mlflow, report_error
from vgs.models.ssl import featuriser_for

log = get_logger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def _client(tracking_uri: str | None):
    from mlflow.tracking import MlflowClient

    return MlflowClient(existing_tracking_uri(tracking_uri))


def registered_source(client, ref: str) -> tuple[str, str]:
    """models:/NAME[/VERSION | @ALIAS] -> (artifact URI of its checkpoint folder, 'NAME version N')."""
    from mlflow.exceptions import MlflowException

    rest = ref[len("models:/") :]
    try:
        if "@" in rest:
            name, alias = rest.split("@", 1)
            version = client.get_model_version_by_alias(name, alias)
        elif "/" in rest:
            name, number = rest.split("/", 1)
            version = client.get_model_version(name, number)
        else:
            name = rest
            versions = client.search_model_versions(f"name = '{name}'")
            if not versions:
                raise ConfigError(f"{ref}: no registered model '{name}' at this tracking URI")
            version = max(versions, key=lambda v: int(v.version))
    except MlflowException as e:
        raise ConfigError(f"{ref}: {e.message}") from e
    return version.source, f"{version.name} version {version.version}"


def checkpoint_file(ref: str, tracking_uri: str | None = None) -> Path:
    """A local best.pt for RUN (see the module's doc), downloaded from MLflow where needed."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    path = Path(ref).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        if (path / "best.pt").is_file():
            return path / "best.pt"
        raise ConfigError(f"--run {ref}: the folder holds no best.pt")
    try:
        uri = existing_tracking_uri(tracking_uri)
    except ConfigError as e:
        raise ConfigError(f"--run {ref}: not a checkpoint file or folder, and {e}") from None
    try:
        if ref.startswith("models:/"):
            source, _ = registered_source(_client(uri), ref)

            def fetch_model(dst: str) -> str:
                return mlflow.artifacts.download_artifacts(artifact_uri=source, tracking_uri=uri, dst_path=dst)

            folder = cached_download(source, fetch_model)
            return folder / "best.pt" if folder.is_dir() else folder

        def fetch_run(dst: str) -> str:
            return mlflow.artifacts.download_artifacts(
                run_id=ref, artifact_path="checkpoint/best.pt", tracking_uri=uri, dst_path=dst
            )

        # the file's size is part of the key: a run still training may log a newer best.pt
        sizes = {f.path: f.file_size for f in _client(uri).list_artifacts(ref, "checkpoint")}
        return cached_download(f"{uri} {ref} {sizes.get('checkpoint/best.pt')}", fetch_run)
    except MlflowException as e:
        raise ConfigError(
            f"--run {ref}: not a checkpoint file or folder, and MLflow at {uri} says: {e.message.splitlines()[0]}"
        ) from e
    except OSError as e:
        raise ConfigError(f"--run {ref}: no checkpoint/best.pt in that run ({e})") from e


def cached_download(key: str, download: Callable[[str], str]) -> Path:
    """What `download(folder)` fetches (it returns the local path), kept in VGS_HOME/downloads under a
    hash of `key` and fetched once: each call by run id had left another copy of best.pt in TMPDIR.
    Fetched into a temporary folder and renamed, so an interrupted download is never taken."""
    import shutil
    import tempfile

    folder = vgs_home() / "downloads" / hashlib.sha256(key.encode()).hexdigest()[:16]
    if (folder / DOWNLOADED).is_file():
        return folder / (folder / DOWNLOADED).read_text()
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        (partial / DOWNLOADED).write_text(str(Path(download(str(partial))).relative_to(partial)))
        try:
            os.replace(partial, folder)
        except OSError:  # another process fetched it first: keep theirs
            shutil.rmtree(partial)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return folder / (folder / DOWNLOADED).read_text()


DOWNLOADED = ".downloaded"  # in a download's folder: the path of what was fetched, relative to it


@dataclass
class Trained:
    """A trained model with the data it was trained on (its corpus's stores)."""

    model: torch.nn.Module
    cfg: Config
    data: object  # vgs.data.prepare.Prepared
    vocab: object  # Vocabulary or None
    device: torch.device


def load_trained(
    ref: str, tracking_uri: str | None = None, data_root: str | None = None, device: str = "auto"
) -> Trained:
    from vgs.tasks.factory import build_model

    path = checkpoint_file(ref, tracking_uri)
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for a file that is not a checkpoint
        raise ConfigError(f"{path}: not a vgs checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(ck, dict) or "model" not in ck or "config" not in ck:
        raise ConfigError(f"{path}: not a vgs best.pt (no 'model' and 'config')")
    cfg = from_dict(ck["config"])
    # a checkpoint's paths are the trainer's: never written to (the feature store is this machine's
    # VGS_HOME), and its corpus is read only where it exists here
    overrides = {"data.store": ""}
    if data_root:
        overrides["data.root"] = str(Path(data_root).expanduser().resolve())
    elif cfg.data.root and not Path(cfg.data.root).exists():
        raise ConfigError(
            f"{path} was trained on the corpus {cfg.data.root}, which is not on this machine; pass --data DIR "
            f"(the same corpus, wherever it is here)"
        )
    cfg = apply_overrides(cfg, overrides)
    data = prepare(cfg.data, speech=featuriser_for(cfg))
    vocab = Vocabulary(ck["vocab"]) if ck.get("vocab") else None
    dev = pick_device(device)
    model = build_model(
        cfg.model,
        data.speech.dim,
        data.images.feature_dim,
        len(vocab) if vocab else 0,
        cfg.train.epochs,
        ck.get("max_chars", cfg.model.asr.max_chars),
    ).to(dev)
    model.load_state_dict(ck["model"])
    import dataclasses

    data = dataclasses.replace(data, speech_norm=cfg.data.speech_norm)
    return Trained(model.eval(), cfg, data, vocab, dev)


def _check_speech_to_image(t: Trained) -> None:
    from vgs.tasks import task_of

    if task_of(t.cfg.model).image_queries != "speech":
        raise ConfigError(f"this run's model ({t.cfg.model.family}) does not rank images by speech")


def wav_features(t: Trained, wav: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A recording as the model's speech input, as in training: the training corpus's MFCC preset
    standardised with the training split's statistics (or the utterance's own), or what its front-end
    reads (a frozen SSL model's states, computed here; the waveform)."""

    audio = load_audio(wav)
    if not torch.isfinite(audio).all():  # it ranked every image at score nan and exited 0
        bad = int((~torch.isfinite(audio)).sum())
        raise CorpusError(f"{wav}: {bad} of its {len(audio)} samples are NaN or infinite; it cannot be a query")
    note = check_recording_length(wav, len(audio), t.cfg.data.features, t.cfg.data.max_frames)
    if note:
        log.warning(f"note: {note}")
    f = t.data.speech.standardise(featuriser_for(t.cfg)(audio), t.data.speech_norm == "utterance")
    frames = np.zeros((1, max(len(f), 6), f.shape[1]), np.float32)
    frames[0, : len(f)] = f
    return torch.from_numpy(frames), torch.tensor([len(f)])


@torch.no_grad()
def embed_wav(t: Trained, wav: str) -> np.ndarray:
    speech, lengths = wav_features(t, wav)
    return (
        t.model.query({"speech": speech.to(t.device), "lengths": lengths.to(t.device)}, t.cfg.model.asr.beam)
        .float()
        .cpu()
        .numpy()[0]
    )


@torch.no_grad()
def embed_image_files(t: Trained, files: list[Path]) -> np.ndarray:

    if t.data.images.feature_dim:
        raise ConfigError(
            "this run trained on precomputed image features; rank the corpus's images "
            "(leave out --images) or compute the same features for the new ones"
        )
    out = []
    bs = t.cfg.train.eval_batch_size
    for a in range(0, len(files), bs):
        raw = np.stack(
            [
                centre_crop(_load_image(str(f), t.cfg.data.image_resize), t.cfg.data.image_crop)
                for f in files[a : a + bs]
            ]
        )
        out.append(t.model.image(standardise_pixels(raw).to(t.device)).float().cpu().numpy())
    return np.concatenate(out)


def corpus_splits(t: Trained, splits: list[str]):
    from vgs.tasks.factory import text_source

    out = []
    for s in splits:
        try:
            out.append((s, PairSplit(t.data, s, text_source(t.cfg.model), t.vocab)))
        except ValueError:
            continue  # an empty split (e.g. a corpus without a test split)
    return out


@torch.no_grad()
def corpus_embeddings(t: Trained, splits: list[str], kinds: tuple[str, ...] = ("speech", "image")) -> dict[str, list]:
    """Speech embeddings of every caption and/or image embeddings of every image of the splits
    (only the kinds asked for are computed: speech may mean beam-decoding every caption)."""

    rows: dict[str, list] = {k: [] for k in ("kind", "id", "split", "image", "transcript", "embedding")}
    for name, split in corpus_splits(t, splits):
        if "speech" in kinds:
            speech = embed_queries(t.model, split, t.cfg, t.device, np.arange(len(split)), t.cfg.model.asr.beam)
            for i, uid in enumerate(split.utt_ids):
                for k, v in zip(
                    rows,
                    (
                        "speech",
                        uid,
                        name,
                        split.image_names[split.image_of_caption[i]],
                        split.transcripts[i],
                        speech[i],
                    ),
                ):
                    rows[k].append(v)
        if "image" in kinds:
            images = embed_images(t.model, split, t.cfg, t.device, np.arange(len(split.image_names)))
            for i, image in enumerate(split.image_names):
                for k, v in zip(rows, ("image", image, name, image, "", images[i])):
                    rows[k].append(v)
    return rows


def top_k(query: np.ndarray, candidates: np.ndarray, k: int) -> list[tuple[int, float]]:
    """Indices and cosine scores of the k best candidates (embeddings are L2-normalised)."""
    scores = candidates @ query
    order = np.argsort(-scores, kind="stable")[:k]
    return [(int(i), float(scores[i])) for i in order]


def retrieve_images(t: Trained, wav: str, images_dir: str | None, k: int, splits: list[str]) -> list[tuple[str, float]]:
    _check_speech_to_image(t)
    query = embed_wav(t, wav)
    if images_dir:
        files = sorted(p for p in Path(images_dir).expanduser().iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ConfigError(f"--images {images_dir}: no image files ({', '.join(IMAGE_SUFFIXES)})")
        return [(str(files[i]), s) for i, s in top_k(query, embed_image_files(t, files), k)]
    rows = corpus_embeddings(t, splits, ("image",))
    return [(rows["id"][i], s) for i, s in top_k(query, np.stack(rows["embedding"]), k)]


def retrieve_captions(t: Trained, image: str, k: int, splits: list[str]) -> list[tuple[str, str, float]]:
    _check_speech_to_image(t)
    query = embed_image_files(t, [Path(image).expanduser()])[0]
    rows = corpus_embeddings(t, splits, ("speech",))
    return [(rows["id"][i], rows["transcript"][i], s) for i, s in top_k(query, np.stack(rows["embedding"]), k)]


def write_parquet(rows: dict[str, list], out: str | Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table(
        {
            **{k: rows[k] for k in rows if k != "embedding"},
            "embedding": pa.array([np.asarray(e, np.float32) for e in rows["embedding"]], type=pa.list_(pa.float32())),
        }
    )
    tmp = out.with_name(out.name + ".tmp")
    try:
        pq.write_table(table, tmp)
        tmp.replace(out)  # never a half-written file under the asked name
    finally:
        tmp.unlink(missing_ok=True)
    return out


def check_out_file(out: str) -> None:
    """`vgs embed --out`, checked before any work: a file name whose folder can be made and written."""
    path = Path(out).expanduser()
    if path.is_dir():
        raise ConfigError(
            f"--out {out} is a folder; name the Parquet file to write, e.g. {path / 'embeddings.parquet'}"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--out {out}: its folder {path.parent} cannot be made ({e.strerror or e})") from e
    if not os.access(path.parent, os.W_OK):
        raise ConfigError(f"--out {out}: its folder {path.parent} is not writable")


def register_best(client, sweep_run_id: str, name: str) -> str:
    """Register the best trial's checkpoint of a sweep (its parent run's tag vgs.best_run_id) in
    the MLflow Model Registry as a new version of NAME; returns 'NAME version N'."""
    from mlflow.exceptions import MlflowException

    parent = client.get_run(sweep_run_id)
    best = parent.data.tags.get("vgs.best_run_id")
    if not best:
        raise ConfigError(f"sweep run {sweep_run_id} names no best trial (tag vgs.best_run_id)")
    run = client.get_run(best)
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description=f"best trials of vgs sweeps ({parent.info.run_name})")
    version = client.create_model_version(
        name,
        source=f"{run.info.artifact_uri}/checkpoint",
        run_id=best,
        tags={"vgs.sweep_run_id": sweep_run_id, "vgs.trial_id": run.data.tags.get("vgs.trial_id", "")},
    )
    return f"{name} version {version.version}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    embed = bool(argv) and argv[0] == "embed"
    if embed:
        argv = argv[1:]
    p = argparse.ArgumentParser(
        prog="python -m vgs.results.retrieve" + (" embed" if embed else ""), description=__doc__.split("\n\n")[0]
    )
    p.add_argument(
        "--run", required=True, help="best.pt, its folder, an MLflow run id, or models:/NAME[/VERSION|@ALIAS]"
    )
    add_tracking_uri(p)
    p.add_argument("--data", help="the corpus folder, where it is not where the run was trained")
    p.add_argument(
        "--splits",
        default="train,val,test" if embed else "test",
        help="corpus splits to rank or embed, comma-separated (default: %(default)s)",
    )
    p.add_argument("--device", default="auto", help="cpu, cuda or auto")
    if embed:
        p.add_argument("--out", required=True, help="Parquet file: kind, id, split, image, transcript, embedding")
    else:
        query = p.add_mutually_exclusive_group(required=True)
        query.add_argument("--wav", help="a spoken query: the top images")
        query.add_argument("--image", help="an image: the top spoken captions of the corpus")
        p.add_argument("--images", help="with --wav: rank the images of this folder instead of the corpus's")
        p.add_argument("-k", type=int, default=10, help="how many to print (default: 10)")
    a = p.parse_args(argv)
    quiet_mlflow()  # no download progress bar above the ranking
    splits = [s.strip() for s in a.splits.split(",") if s.strip()]
    try:
        if embed:
            check_out_file(a.out)  # before the model loads and every recording is embedded
        trained = load_trained(a.run, a.tracking_uri, a.data, a.device)
        if embed:
            _check_speech_to_image(trained)
            rows = corpus_embeddings(trained, splits)
            out = write_parquet(rows, a.out)
            print(
                f"{rows['kind'].count('speech')} speech and {rows['kind'].count('image')} image embeddings "
                f"({trained.cfg.model.latent}-d) -> {out}"
            )
        elif a.wav:
            for rank, (image, score) in enumerate(retrieve_images(trained, a.wav, a.images, a.k, splits), 1):
                print(f"{rank:3d}  {score:.3f}  {image}")
        else:
            for rank, (uid, text, score) in enumerate(retrieve_captions(trained, a.image, a.k, splits), 1):
                print(f"{rank:3d}  {score:.3f}  {uid}  {text}")
    except (ConfigError, CorpusError) as e:
        return report_error(e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
