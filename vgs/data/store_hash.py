"""Content hashes of a store's sources: a store is reused only while its sources and parameters are
unchanged, and files are written atomically."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from vgs.data.records import CorpusError

STORE_VERSION = 1


def file_digest(path: str) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def content_entries(entries: list[tuple[str, str]], store_dir: Path) -> list[str]:
    """One line per source file: its key and a hash of its bytes, so a store is found again only
    for the same content (size and mtime alone miss a re-recorded file of the same size that an
    archive extracted with fixed mtimes).  Hashes are computed once and cached in the store folder
    under (size, mtime, ctime, inode): a rewritten or re-extracted file changes its ctime or inode,
    which no tool sets back, so it is hashed again."""
    cache_path = store_dir / "content-hashes.json"
    try:
        cache = json.loads(cache_path.read_text())
    except (FileNotFoundError, ValueError):
        cache = {}
    out, changed = [], False
    for key, path in entries:
        try:
            st = os.stat(path)
        except FileNotFoundError as e:
            raise CorpusError(f"file not found: {path}") from e
        stamp = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        hit = cache.get(path)
        if hit is None or hit[:4] != stamp:
            cache[path] = hit = stamp + [file_digest(path)]
            changed = True
        out.append(f"{key}\0{hit[4]}\n")
    if changed:
        write_json_atomic(cache_path, cache)
    return out


def hash_lines(lines: list[str], params: dict) -> str:
    h = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    for line in lines:
        h.update(line.encode())
    return h.hexdigest()[:16]


def source_hash(entries: list[tuple[str, str]], params: dict, store_dir: Path) -> str:
    """Hash of (key, content hash) of every source file plus the parameters."""
    return hash_lines(content_entries(entries, store_dir), params)


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)
