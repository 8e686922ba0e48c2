"""The e-mail inside an attachment (an e-mail forwarded as an attachment), through libpff.

libpff reaches an embedded message with libpff_attachment_get_item, but libpff-python has no
method for it. Its extension module exports that C function and pypff_item_create (which
wraps a libpff item as a pypff.message that keeps its parent alive), so they are called here
through ctypes with the libpff item of the attachment: the first field after PyObject_HEAD
of pypff's item object (pypff_item.h). That layout is checked as far as it can be: a
libpff-python release it was read in, CPython with the GIL, the symbols present, and libpff
itself must call the item an attachment.
Whatever fails returns None, and the caller reports the embedded message as not kept.
"""

from __future__ import annotations

import ctypes
import logging
import sys
import sysconfig
from functools import cache
from typing import Any

log = logging.getLogger(__name__)

ITEM_TYPE_ATTACHMENT = 3  # LIBPFF_ITEM_TYPE_ATTACHMENT (libpff/definitions.h)
# pypff_item_t has `item` right after PyObject_HEAD in the sources of 20211114 (the oldest
# release the pst extra allows; it lacks pypff_item_create, so the symbol check says no) and
# 20260926. A newer release is used only once checked again (the embedded-message tests fail
# until then), never guessed at: a wrong pointer would crash the process.
LAYOUT_CHECKED = (20211114, 20260926)


class _Api:
    def __init__(self, library: ctypes.PyDLL) -> None:
        self.get_item = library.libpff_attachment_get_item
        self.get_item.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p),
                                  ctypes.c_void_p]
        self.get_item.restype = ctypes.c_int
        self.get_type = library.libpff_item_get_type
        self.get_type.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint8),
                                  ctypes.c_void_p]
        self.get_type.restype = ctypes.c_int
        self.create = library.pypff_item_create
        self.create.argtypes = [ctypes.c_void_p, ctypes.py_object]
        self.create.restype = ctypes.py_object


@cache
def _api(module_file: str) -> _Api | None:
    if sys.implementation.name != "cpython" or sysconfig.get_config_var("Py_GIL_DISABLED"):
        return None
    try:
        return _Api(ctypes.PyDLL(module_file))  # PyDLL: the calls hold the GIL
    except (OSError, AttributeError) as exc:
        log.debug("libpff's embedded-item functions unavailable: %s", exc)
        return None


def embedded_message(pypff: Any, attachment: Any) -> Any | None:
    """The pypff.message an attachment by ATTACH_EMBEDDED_MSG holds, None if out of reach."""
    if type(attachment) is not pypff.attachment or \
            type(attachment).__basicsize__ < object.__basicsize__ + ctypes.sizeof(ctypes.c_void_p):
        return None
    if not _layout_checked(pypff):
        return None
    api = _api(pypff.__file__)
    if api is None:
        return None
    item = ctypes.c_void_p.from_address(id(attachment) + object.__basicsize__).value
    item_type = ctypes.c_uint8()
    if not item or api.get_type(item, ctypes.byref(item_type), None) != 1 \
            or item_type.value != ITEM_TYPE_ATTACHMENT:
        return None
    embedded = ctypes.c_void_p()
    if api.get_item(item, ctypes.byref(embedded), None) != 1 or not embedded.value:
        return None
    try:
        message = api.create(embedded.value, attachment)
    except (OSError, MemoryError, TypeError) as exc:
        log.debug("libpff cannot wrap an embedded item: %s", exc)
        return None
    return message if isinstance(message, pypff.message) else None


def _layout_checked(pypff: Any) -> bool:
    try:
        version = int(pypff.get_version())
    except (AttributeError, TypeError, ValueError):
        return False
    if not LAYOUT_CHECKED[0] <= version <= LAYOUT_CHECKED[1]:
        log.debug("libpff-python %s: embedded messages not read (layout checked for %s-%s)",
                  version, *LAYOUT_CHECKED)
        return False
    return True
