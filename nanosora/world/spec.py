"""Flatland's constants, exactly as docs/world.md defines them.

Everything else in `nanosora.world` reads these names; no other file repeats a number
from the spec, so the contract has one home.
"""

BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0),
    "gray": (128, 128, 128),
    "white": (255, 255, 255),
}
DEFAULT_BACKGROUND = "black"

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "orange": (245, 140, 30),
    "yellow": (240, 220, 40),
    "green": (50, 190, 70),
    "cyan": (40, 200, 220),
    "blue": (50, 90, 235),
    "purple": (150, 70, 210),
    "pink": (240, 120, 190),
}

SHAPES = ("circle", "square", "triangle")

# Extent (circle diameter, square side, triangle width) as a fraction of min(width, height).
SIZES: dict[str, float] = {"small": 0.15, "medium": 0.25, "large": 0.35}
DEFAULT_SIZE = "medium"

# One motion per object. "leaves a trail" is a modifier on top of a motion (see scene.py).
MOTIONS = (
    "stays still",
    "moves left",
    "moves right",
    "moves up",
    "moves down",
    "bounces",
    "falls",
    "spins",
    "grows",
    "shrinks",
)
DIRECTIONS = ("left", "right", "up", "down")
LINEAR_SPEED = 0.25  # frame fractions per second (of the width for left/right, height for up/down)
IN_VIEW_SECONDS = 2.0  # a moving object starts where it stays fully in view this long
BOUNCE_SPEED = 0.3  # per second on each axis
FALL_ACCEL = 1.5  # frame heights per second squared
FALL_RESTITUTION = 0.7  # fraction of speed kept on each bounce off the bottom
FALL_START_MAX = 0.25  # a falling object starts in the top quarter
SPIN_DEG_PER_S = 90.0
GROW_FACTOR, SHRINK_FACTOR, SCALE_SECONDS = 2.0, 0.5, 2.0
TRAIL_OPACITY = 0.4
# Extension: colliding objects approach at LINEAR_SPEED and stay in view until this long
# after they touch (after that they may leave the frame, like any mover after 2 s).
COLLISION_AFTER = 0.5
CAMERA_SPEED = 0.2  # of the width per second
CAMERA_PANS = ("left", "right")

MAX_OBJECTS = 3
MIN_SIDE, MAX_SIDE, SIDE_MULTIPLE = 32, 512, 16
DEFAULT_WIDTH = DEFAULT_HEIGHT = 64
DEFAULT_FPS, MIN_FPS, MAX_FPS = 8, 1, 30

# Fill ratio of the bounding box for each shape, used by the scorer's shape check.
FILL_RATIOS: dict[str, float] = {"circle": 0.785, "square": 1.0, "triangle": 0.5}


def check_frame_size(width: int, height: int) -> None:
    """Raise ValueError unless width and height are valid Flatland frame sides."""
    for name, v in (("width", width), ("height", height)):
        if not isinstance(v, int) or v % SIDE_MULTIPLE or not MIN_SIDE <= v <= MAX_SIDE:
            raise ValueError(
                f"{name} {v!r} is not valid: Flatland frames take multiples of {SIDE_MULTIPLE} "
                f"from {MIN_SIDE} to {MAX_SIDE}"
            )


def check_fps(fps: int) -> None:
    if not isinstance(fps, int) or not MIN_FPS <= fps <= MAX_FPS:
        raise ValueError(f"fps {fps!r} is not valid: use a whole number from {MIN_FPS} to {MAX_FPS}")


def num_frames(seconds: float, fps: int) -> int:
    """Frames in a clip of `seconds` at `fps`: frame i is shown at time i / fps, and the last
    frame lands on `seconds` (so 2 s at 8 fps is 17 frames, the autoencoder's 1 + 4k)."""
    if not seconds > 0:
        raise ValueError(f"seconds {seconds!r} is not valid: use a positive duration")
    return int(round(seconds * fps)) + 1
