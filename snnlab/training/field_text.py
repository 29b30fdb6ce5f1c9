"""The text typed in a form's number box, read strictly (never rounded, clamped or replaced): the one parser of
both experiment forms, the ipywidgets one (:mod:`snnlab.widgets.config_form`) and the Panel dashboard's
(:mod:`snnlab.dashboard.forms`), kept beside the configuration whose fields they edit."""
from __future__ import annotations

__all__ = ["number_range_text", "parse_number_text"]


def number_range_text(kind: str, bounds: tuple | None = None, inclusive: tuple = (True, True),
                      allow_none: bool = False) -> str:
    """What a number field takes, in words: ``"an integer in [1, 100]"``, ``"a number > 0"``, ``"... or blank"``.

    Example:
        >>> number_range_text("Integer", (1, 100))
        'an integer in [1, 100]'
        >>> number_range_text("Number", (0, None), (False, True), allow_none=True)
        'a number > 0 or blank'
    """
    if kind not in ("Integer", "Number"):
        raise ValueError(f"number_range_text: kind must be 'Integer' or 'Number', got {kind!r}")
    lo, hi = bounds or (None, None)
    what = "an integer" if kind == "Integer" else "a number"
    if lo is not None and hi is not None:
        what = f"{what} in {'[' if inclusive[0] else '('}{lo}, {hi}{']' if inclusive[1] else ')'}"
    elif lo is not None:
        what = f"{what} {'>=' if inclusive[0] else '>'} {lo}"
    elif hi is not None:
        what = f"{what} {'<=' if inclusive[1] else '<'} {hi}"
    return what + (" or blank" if allow_none else "")


def parse_number_text(text: str, kind: str, allow_none: bool = False, bounds: tuple | None = None,
                      inclusive: tuple = (True, True)) -> int | float | None:
    """The number typed in a form's text box, parsed strictly: never rounded, clamped or replaced.

    ``kind="Integer"`` takes integer text only (``"2.7"`` and ``"1e3"`` are refused: write ``1000``);
    ``kind="Number"`` any finite float. Blank (or ``none``/``null``) is ``None`` where ``allow_none``, refused
    otherwise. Raises ``ValueError("expected <what the field takes>")``; ``bounds`` only word that message (range
    checks are the config's own validation). Both experiment forms (ipywidgets and the Panel dashboard) use it.

    Example:
        >>> parse_number_text(" 12 ", "Integer"), parse_number_text("1e-3", "Number")
        (12, 0.001)
        >>> parse_number_text("", "Number", allow_none=True) is None
        True
        >>> parse_number_text("2.7", "Integer", bounds=(1, 100))
        Traceback (most recent call last):
        ...
        ValueError: expected an integer in [1, 100]
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_number_text: text must be a str, got {type(text).__name__} {text!r}")
    expected = number_range_text(kind, bounds, inclusive, allow_none)
    text = text.strip()
    if allow_none and text.lower() in ("", "none", "null"):
        return None
    try:
        if kind == "Integer":
            return int(text)
        value = float(text)
    except ValueError:
        raise ValueError(f"expected {expected}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"expected {expected}")
    return value
