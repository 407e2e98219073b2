"""Pick the importer for a corpus folder: by name (data.layout) or by what the folder holds."""

from __future__ import annotations

from pathlib import Path

from vgs.data.flickr8k import read_flickr8k
from vgs.data.librispeech import is_librispeech, read_librispeech
from vgs.data.places import metadata_files, read_places
from vgs.data.records import Corpus, CorpusError
from vgs.data.spokencoco import is_spokencoco, read_spokencoco

READERS = {
    "flickr8k": read_flickr8k,
    "places": read_places,
    "spokencoco": read_spokencoco,
    "librispeech": read_librispeech,
}


def detect_layout(root: Path) -> str:
    if not root.is_dir():
        raise CorpusError(f"corpus folder not found: {root}")
    if (root / "flickr_audio" / "wav2capt.txt").is_file():
        return "flickr8k"
    if is_spokencoco(root):
        return "spokencoco"
    if metadata_files(root):
        return "places"
    if is_librispeech(root):
        return "librispeech"
    raise CorpusError(
        f"cannot tell the layout of {root}: expected flickr_audio/wav2capt.txt (Flickr8K), "
        f"SpokenCOCO_*.json (SpokenCOCO), train*/val*/test*.json with audio_base_path (Places) "
        f"or <subset>/<spk>/<chap>/*.trans.txt (LibriSpeech); "
        f"set data.layout to one of {', '.join(READERS)}"
    )


def read_corpus(root: str | Path, layout: str = "auto", image_dir: str | None = None, skip_bad: bool = False) -> Corpus:
    root = Path(root).expanduser().resolve()
    if layout == "auto":
        layout = detect_layout(root)
    if layout not in READERS:
        raise CorpusError(f"unknown data.layout '{layout}'; known: auto, {', '.join(READERS)}")
    return READERS[layout](root, image_dir or None, skip_bad=skip_bad)
