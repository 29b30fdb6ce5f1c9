"""The text typed in a form's box or on the command line, read strictly (never rounded, clamped or replaced): the
one set of parsers of every surface that takes a field as text -- the ipywidgets form
(:mod:`snnlab.widgets.config_form`), the Panel dashboard's (:mod:`snnlab.dashboard.forms`) and the command line's
flags (:mod:`snnlab.config_args`) -- kept beside the configuration whose fields they edit."""
from __future__ import annotations

__all__ = ["INT_LIST_FORMAT", "INT_LIST_NOTE", "NONE_TEXTS", "is_none_text", "list_may_be_empty", "number_range_text",
           "parse_int_list_text", "parse_number_text"]

#: the texts (any case, surrounding spaces ignored) that mean None in a field that allows None
NONE_TEXTS = ("", "none", "null")

#: how a list of integers (``hidden``) is typed on every surface, in words
INT_LIST_FORMAT = "comma-separated integers like 128,64 or a JSON list like [128, 64]"
#: the sentence each surface adds to a list field's help or tooltip
INT_LIST_NOTE = f"Typed as {INT_LIST_FORMAT}."


def list_may_be_empty(spec: dict) -> bool:
    """Whether a list field's length bounds (its schema's ``"bounds"``) allow an empty list (``hidden``'s do not).

    Example:
        >>> list_may_be_empty({"bounds": (1, 64)}), list_may_be_empty({"bounds": None}), list_may_be_empty({})
        (False, True, True)
    """
    return not (spec.get("bounds") or (None, None))[0]


def is_none_text(text: str) -> bool:
    """Whether ``text`` means None in a field that allows None: blank, ``none`` or ``null`` (any case).

    The one rule of the command line, the ipywidgets form and the dashboard (``data_root`` typed ``None`` is no
    folder, not a folder named "None").

    Example:
        >>> [is_none_text(t) for t in ("", " None ", "null", "none/data")]
        [True, True, True, False]
    """
    if not isinstance(text, str):
        raise TypeError(f"is_none_text: text must be a str, got {type(text).__name__} {text!r}")
    return text.strip().lower() in NONE_TEXTS


def parse_int_list_text(text: str, allow_empty: bool = False) -> list[int]:
    """A list of integers typed as text (``hidden``): ``"128,64"``, ``"128"`` or ``"[128, 64]"`` -> a list of ints.

    Entries are separated by commas (spaces around them are ignored), optionally inside one pair of brackets. An
    empty entry (``"32,,16"``, a trailing comma) is an error, not skipped; so is an entry that is not integer text
    (``"1.5"``, ``"abc"``, ``"nan"``). Blank text or ``"[]"`` is ``[]`` where ``allow_empty``, refused otherwise
    (``hidden`` needs at least one layer). Raises ``ValueError("expected <INT_LIST_FORMAT>, got ...")``; ranges
    are the configuration's own validation. The command line, the ipywidgets form and the dashboard all use it.

    Example:
        >>> parse_int_list_text("128, 64"), parse_int_list_text("[128, 64]"), parse_int_list_text(" 32 ")
        ([128, 64], [128, 64], [32])
        >>> parse_int_list_text("32,,16")
        Traceback (most recent call last):
        ...
        ValueError: expected comma-separated integers like 128,64 or a JSON list like [128, 64], got '32,,16' (entry 2 is empty)
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_int_list_text: text must be a str, got {type(text).__name__} {text!r}")

    def refuse(why: str = "") -> ValueError:
        return ValueError(f"expected {INT_LIST_FORMAT}, got {text!r}" + (f" ({why})" if why else ""))

    body = text.strip()
    if body.startswith("[") or body.endswith("]"):
        if not (body.startswith("[") and body.endswith("]") and len(body) >= 2):
            raise refuse("unmatched bracket")
        body = body[1:-1].strip()
    if not body:
        if allow_empty:
            return []
        raise refuse("no entries")
    parts = [p.strip() for p in body.split(",")]
    out = []
    for i, part in enumerate(parts, 1):
        if not part:
            raise refuse(f"entry {i} is empty")
        try:
            out.append(int(part))
        except ValueError:
            raise refuse(f"entry {i}, {part!r}, is not an integer") from None
    return out


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
    if allow_none and is_none_text(text):
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
