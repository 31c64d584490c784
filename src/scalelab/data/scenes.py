"""Scenes of shapes with questions whose answers follow from the scene: data that tests seeing.

Each scene (drawn with Pillow from a seed) holds 1-4 shapes, each a circle, square or triangle in
one of four colours, small or large, at a position. Five kinds of question, each multiple choice
with a known chance level:
- `count`: how many shapes there are (choices 1-4; chance 1/4);
- `colour`: the colour of the one shape of a kind (chance 1/4);
- `left_of`: whether one shape is left of another (yes/no; chance 1/2);
- `further_left`: which of two named shapes is further left (the two names; chance 1/2);
- `statement`: a true/false statement about the scene, NLVR-style ("There is a red square.",
  "There are exactly two circles."), true half of the time (chance 1/2).
A scene is a pure function of (split, index): the train and held-out splits draw from disjoint
seed streams, so no held-out scene is ever trained on.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from PIL import Image, ImageDraw

KINDS = ("circle", "square", "triangle")
COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (50, 80, 220), "yellow": (230, 200, 30)}
QUESTION_TYPES = ("count", "colour", "left_of", "further_left", "statement")
RELATIONAL = ("left_of", "further_left")  # the types that relate two shapes' positions
CHANCE = {"count": 0.25, "colour": 0.25, "left_of": 0.5, "further_left": 0.5, "statement": 0.5}
NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four"}


@dataclass(frozen=True)
class Shape:
    kind: str
    colour: str
    size: int  # pixels across
    x: int  # centre
    y: int


@dataclass(frozen=True)
class Item:
    """One question about one image: the prompt's question, its choices and the right one."""

    id: str
    image: Image.Image
    question: str
    choices: tuple[str, ...]
    answer: str
    qtype: str


def _rng(split: str, index: int) -> random.Random:
    return random.Random(int(hashlib.sha256(f"scenes|{split}|{index}".encode()).hexdigest()[:16], 16))


def _scene(rng: random.Random, size: int) -> list[Shape]:
    shapes: list[Shape] = []
    for _ in range(rng.randint(1, 4)):
        for _attempt in range(50):  # place without overlap
            s = rng.choice((size // 5, size // 3))
            x, y = rng.randint(s // 2 + 1, size - s // 2 - 2), rng.randint(s // 2 + 1, size - s // 2 - 2)
            if all(abs(x - o.x) > (s + o.size) // 2 + 1 or abs(y - o.y) > (s + o.size) // 2 + 1 for o in shapes):
                shapes.append(Shape(rng.choice(KINDS), rng.choice(list(COLOURS)), s, x, y))
                break
    return shapes


def draw(shapes: list[Shape], size: int) -> Image.Image:
    image = Image.new("RGB", (size, size), (255, 255, 255))
    pen = ImageDraw.Draw(image)
    for s in shapes:
        h = s.size // 2
        box = (s.x - h, s.y - h, s.x + h, s.y + h)
        fill = COLOURS[s.colour]
        if s.kind == "circle":
            pen.ellipse(box, fill=fill)
        elif s.kind == "square":
            pen.rectangle(box, fill=fill)
        else:
            pen.polygon([(s.x, s.y - h), (s.x - h, s.y + h), (s.x + h, s.y + h)], fill=fill)
    return image


def _name(s: Shape) -> str:
    return f"{s.colour} {s.kind}"


def _question(rng: random.Random, shapes: list[Shape], qtype: str) -> tuple[str, tuple[str, ...], str] | None:
    if qtype == "count":
        return "How many shapes are there?", ("1", "2", "3", "4"), str(len(shapes))
    if qtype == "colour":
        unique = [s for s in shapes if sum(o.kind == s.kind for o in shapes) == 1]
        if not unique:
            return None
        s = rng.choice(unique)
        return f"What colour is the {s.kind}?", tuple(COLOURS), s.colour
    if qtype in RELATIONAL:
        named = [s for s in shapes if sum(_name(o) == _name(s) for o in shapes) == 1]
        pairs = [(a, b) for a in named for b in named if a is not b and abs(a.x - b.x) > 2]
        if not pairs:
            return None
        a, b = rng.choice(pairs)
        if qtype == "further_left":
            return (f"Which is further left: the {_name(a)} or the {_name(b)}?", (_name(a), _name(b)),
                    _name(a if a.x < b.x else b))
        return f"Is the {_name(a)} left of the {_name(b)}?", ("yes", "no"), "yes" if a.x < b.x else "no"
    truth = rng.random() < 0.5
    for _attempt in range(20):
        if rng.random() < 0.5:
            kind, colour = rng.choice(KINDS), rng.choice(list(COLOURS))
            holds = any(s.kind == kind and s.colour == colour for s in shapes)
            statement = f"There is a {colour} {kind}."
        else:
            kind, n = rng.choice(KINDS), rng.randint(1, 3)
            holds = sum(s.kind == kind for s in shapes) == n
            statement = f"There {'is exactly one' if n == 1 else f'are exactly {NUMBER_WORDS[n]}'} {kind}" \
                        f"{'' if n == 1 else 's'}."
        if holds == truth:
            return f"True or false: {statement}", ("true", "false"), "true" if truth else "false"
    return None


def make_item(split: str, index: int, size: int = 32, qtypes: tuple[str, ...] = QUESTION_TYPES) -> Item:
    """Scene `index` of `split` ('train' or 'heldout') with one question, its type cycling by index
    through `qtypes` (a scene that admits none of them is redrawn)."""
    rng = _rng(split, index)
    for attempt in range(100):
        shapes = _scene(rng, size)
        n = len(qtypes)  # one pass of the cycle, then a type at random
        qtype = qtypes[(index + attempt) % n] if attempt < n else rng.choice(qtypes)
        asked = _question(rng, shapes, qtype)
        if asked is not None:
            question, choices, answer = asked
            return Item(f"{split}-{index}", draw(shapes, size), question, choices, answer, qtype)
    raise RuntimeError(f"no question could be asked of scene {split}-{index}")


def make_items(split: str, n: int, size: int = 32, start: int = 0) -> list[Item]:
    return [make_item(split, i, size) for i in range(start, start + n)]
