"""The built-in corpus's scenes: coloured shapes on a background, drawn and rendered, and the English
and Japanese captions that describe them (vgs.data.synth speaks them)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_SIZE = 128

COLOURS = {  # name: (RGB, Japanese)
    "red": ((220, 30, 30), "赤い"),
    "green": ((30, 170, 50), "緑の"),
    "blue": ((30, 60, 220), "青い"),
    "yellow": ((240, 220, 30), "黄色い"),
    "purple": ((140, 40, 180), "紫の"),
    "orange": ((250, 140, 20), "オレンジ色の"),
    "white": ((250, 250, 250), "白い"),
    "black": ((15, 15, 15), "黒い"),
    "pink": ((250, 130, 190), "ピンクの"),
    "brown": ((120, 70, 30), "茶色の"),
}

SHAPES = {
    "circle": "丸",
    "square": "四角",
    "triangle": "三角",
    "star": "星",
    "cross": "十字",
    "diamond": "ひし形",
    "ring": "輪",
}

SIZES = {"small": ("小さい", 0.12), "big": ("大きい", 0.22)}

POSITIONS = {
    "left": ("on the left", "左"),
    "right": ("on the right", "右"),
    "top": ("at the top", "上"),
    "bottom": ("at the bottom", "下"),
    "middle": ("in the middle", "真ん中"),
}

BACKGROUNDS = {"grey": (150, 150, 150), "beige": (215, 200, 170), "sky": (170, 200, 230), "grass": (150, 190, 130)}


@dataclass(frozen=True)
class SceneObject:
    shape: str
    colour: str
    size: str
    x: float  # centre, 0..1 from the left
    y: float  # centre, 0..1 from the top

    @property
    def position(self) -> str:
        if abs(self.x - 0.5) < 0.17 and abs(self.y - 0.5) < 0.17:
            return "middle"
        if abs(self.x - 0.5) >= abs(self.y - 0.5):
            return "left" if self.x < 0.5 else "right"
        return "top" if self.y < 0.5 else "bottom"


@dataclass(frozen=True)
class Scene:
    background: str
    objects: tuple[SceneObject, ...]


def draw_scene(rng: np.random.Generator) -> Scene:
    objects: list[SceneObject] = []
    n = int(rng.integers(3, 6))
    tries = 0
    while len(objects) < n and tries < 200:
        tries += 1
        size = str(rng.choice(list(SIZES)))
        r = SIZES[size][1]
        x, y = rng.uniform(r, 1 - r, size=2)
        # keep objects from covering each other so every mentioned one is visible
        if any(math.hypot(x - o.x, y - o.y) < r + SIZES[o.size][1] * 0.8 for o in objects):
            continue
        objects.append(
            SceneObject(str(rng.choice(list(SHAPES))), str(rng.choice(list(COLOURS))), size, float(x), float(y))
        )
    return Scene(str(rng.choice(list(BACKGROUNDS))), tuple(objects))


def render(scene: Scene, rng: np.random.Generator, size: int = IMAGE_SIZE):
    from PIL import Image, ImageDraw

    base = np.array(BACKGROUNDS[scene.background], dtype=np.float32)
    pixels = base + rng.normal(0, 12, size=(size, size, 3)) + np.linspace(-15, 15, size)[:, None, None]
    img = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for o in scene.objects:
        colour = tuple(int(c) for c in np.clip(np.array(COLOURS[o.colour][0]) + rng.normal(0, 10, 3), 0, 255))
        cx, cy, r = o.x * size, o.y * size, SIZES[o.size][1] * size
        box = (cx - r, cy - r, cx + r, cy + r)
        if o.shape == "circle":
            draw.ellipse(box, fill=colour)
        elif o.shape == "ring":
            draw.ellipse(box, outline=colour, width=max(2, int(r * 0.35)))
        elif o.shape == "square":
            draw.rectangle((cx - r * 0.85, cy - r * 0.85, cx + r * 0.85, cy + r * 0.85), fill=colour)
        elif o.shape == "triangle":
            draw.polygon([(cx, cy - r), (cx - r, cy + r * 0.8), (cx + r, cy + r * 0.8)], fill=colour)
        elif o.shape == "diamond":
            draw.polygon([(cx, cy - r), (cx + r * 0.75, cy), (cx, cy + r), (cx - r * 0.75, cy)], fill=colour)
        elif o.shape == "cross":
            w = r * 0.35
            draw.rectangle((cx - r, cy - w, cx + r, cy + w), fill=colour)
            draw.rectangle((cx - w, cy - r, cx + w, cy + r), fill=colour)
        elif o.shape == "star":
            pts = [
                (
                    cx + (r if k % 2 == 0 else r * 0.45) * math.sin(k * math.pi / 5),
                    cy - (r if k % 2 == 0 else r * 0.45) * math.cos(k * math.pi / 5),
                )
                for k in range(10)
            ]
            draw.polygon(pts, fill=colour)
    return img


def _np(o: SceneObject, with_size: bool) -> tuple[str, str]:
    """English and Japanese noun phrase for an object."""
    en = f"{o.size} {o.colour} {o.shape}" if with_size else f"{o.colour} {o.shape}"
    jp = (SIZES[o.size][0] if with_size else "") + COLOURS[o.colour][1] + SHAPES[o.shape]
    return en, jp


def _relation(a: SceneObject, b: SceneObject) -> tuple[str, str]:
    dx, dy = a.x - b.x, a.y - b.y
    if abs(dx) >= abs(dy):
        return ("to the left of", "の左に") if dx < 0 else ("to the right of", "の右に")
    return ("above", "の上に") if dy < 0 else ("below", "の下に")


def caption(scene: Scene, template: int, rng: np.random.Generator) -> tuple[str, str]:
    """One English caption and its Japanese translation, mentioning a subset of the objects."""
    objs = list(scene.objects)
    idx = rng.permutation(len(objs))
    a, b = objs[idx[0]], objs[idx[1]]
    with_size = bool(rng.integers(0, 2))
    (a_en, a_jp), (b_en, b_jp) = _np(a, with_size), _np(b, not with_size)
    if template == 0:
        return f"a {a_en} and a {b_en}", f"{a_jp}と{b_jp}"
    if template == 1:
        where_en, where_jp = POSITIONS[a.position]
        return f"there is a {a_en} {where_en}", f"{where_jp}に{a_jp}があります"
    if template == 2:
        rel_en, rel_jp = _relation(a, b)
        return f"a {a_en} {rel_en} a {b_en}", f"{b_jp}{rel_jp}{a_jp}があります"
    if template == 3:
        n = len(objs)
        words = {3: ("three", "三つ"), 4: ("four", "四つ"), 5: ("five", "五つ")}[n]
        return (
            f"{words[0]} shapes on a {scene.background} background including a {a_en}",
            f"{BACKGROUNDS_JP[scene.background]}の背景に{a_jp}を含む{words[1]}の図形",
        )
    c = objs[idx[2]]
    c_en, c_jp = _np(c, with_size)
    return f"i can see a {a_en} a {b_en} and a {c_en}", f"{a_jp}と{b_jp}と{c_jp}が見えます"


BACKGROUNDS_JP = {"grey": "灰色", "beige": "ベージュ", "sky": "水色", "grass": "緑色"}

N_TEMPLATES = 5


def mentioned_objects(text: str) -> list[tuple[str | None, str, str]]:
    """(size or None, colour, shape) of every object a caption names."""
    words = text.split()
    return [
        (words[i - 2] if i >= 2 and words[i - 2] in SIZES else None, words[i - 1], w)
        for i, w in enumerate(words)
        if w in SHAPES and i >= 1 and words[i - 1] in COLOURS
    ]


def images_fitting(corpus_root: str | Path, split: str = "val") -> np.ndarray:
    """For every caption of `split`, how many images of that split hold every object it names
    (size, colour, shape): images a listener could not tell apart by the objects alone.  Positions,
    relations, counts and backgrounds are ignored, so fewer images may fit the whole caption."""
    records = [
        im for im in json.loads((Path(corpus_root) / "dataset.json").read_text())["images"] if im["split"] == split
    ]
    scenes = [im["scene"]["objects"] for im in records]

    def fits(objects: list[dict], named: list) -> bool:
        return all(
            any(o["shape"] == shape and o["colour"] == colour and size in (None, o["size"]) for o in objects)
            for size, colour, shape in named
        )

    named = [mentioned_objects(s["raw"]) for im in records for s in im["sentences"]]
    return np.array([sum(fits(objects, n) for objects in scenes) for n in named])
