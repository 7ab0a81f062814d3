"""Whether an object is a `CropEditor` (ebgan_tf.editing) as the protocol spells it.

`isinstance` with the runtime-checkable protocol sees only that the members exist, and mypy does not compare
parameter names; callers pass `attributes` and `strengths` by keyword, so the names are checked here too.
"""

from __future__ import annotations

import inspect

from ebgan_tf.editing import CropEditor

METHODS = ("edit", "edit_composed", "classify")


def parameter_names(function) -> list[str]:
    return [name for name in inspect.signature(function).parameters if name != "self"]


def crop_editor_mismatches(editor) -> list[str]:
    """What keeps `editor` from being a CropEditor: missing members, or methods whose leading parameters are not
    the protocol's (extra parameters after them, with defaults, are allowed); [] when it is one."""
    if not isinstance(editor, CropEditor):
        missing = [name for name in ("info", *METHODS) if not hasattr(editor, name)]
        return [f"{type(editor).__name__} lacks {', '.join(missing)}"]
    problems = []
    for name in METHODS:
        wanted, given = parameter_names(getattr(CropEditor, name)), parameter_names(getattr(editor, name))
        if given[: len(wanted)] != wanted:
            problems.append(f"{type(editor).__name__}.{name}{tuple(given)}: the protocol has {tuple(wanted)}")
    return problems
