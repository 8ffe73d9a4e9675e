"""Exceptions raised by hexz. Every one is a :class:`HexzError`; the
subclasses also derive from the built-in exception a caller would expect
(``FileNotFoundError``, ``ValueError``, ``KeyError``, ``IndexError``, ...),
so ordinary ``except`` clauses keep working. Messages name the file and the
field at fault; ``code`` is the status name of the C ABI (``"HashMismatch"``,
...). The class is chosen from the status's category (``CORRUPT``,
``NOT_FOUND``, ...; C's ``hexz_status_category``), the table Go's sentinel
errors come from too (bindings/testdata/error-categories.json).

Every hexz error is also a :class:`SafetensorError`, so code written for
``safetensors`` (``except SafetensorError:``) catches hexz's errors too:
where the ``safetensors`` package is installed, ``hexz.SafetensorError`` *is*
``safetensors.SafetensorError`` (either import works); without it, hexz
defines a class of that name, itself a plain ``Exception`` as upstream's is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

__all__ = [
    "SafetensorError",
    "HexzError",
    "CorruptArchiveError",
    "ParentMissingError",
    "InvalidInputError",
    "InvalidIndexError",
    "NotFoundError",
    "ArchiveNotFoundError",
    "UnsupportedError",
    "HexzIOError",
    "HexzMemoryError",
    "CancelledError",
    "HexzInternalError",
    "SignatureError",
    "EncryptionKeyError",
]


def _safetensor_error() -> type:
    """safetensors' own exception class, or a stand-in of the same name."""
    try:
        from safetensors import SafetensorError as upstream
    except ImportError:

        class SafetensorError(Exception):
            """Stand-in for ``safetensors.SafetensorError`` (safetensors is
            not installed): the base of every hexz error."""

        SafetensorError.__module__ = __name__
        return SafetensorError
    if not (isinstance(upstream, type) and issubclass(upstream, Exception)):  # pragma: no cover - a future safetensors
        raise ImportError("safetensors.SafetensorError is not an exception class")
    return upstream


if TYPE_CHECKING:

    class SafetensorError(Exception):
        """``safetensors.SafetensorError``, or hexz's stand-in for it."""

else:
    SafetensorError = _safetensor_error()


class HexzError(SafetensorError):
    """Base class of every hexz error (a :class:`SafetensorError`)."""

    code: Optional[str] = None

    def __str__(self) -> str:
        # KeyError quotes its argument; a message reads better unquoted.
        return str(self.args[0]) if self.args else ""


class CorruptArchiveError(HexzError):
    """The archive is damaged: a checksum or block hash does not match, it
    ends early, a field holds a value that is not allowed, or a block does
    not decode."""


class ParentMissingError(HexzError):
    """The archive was stored against a parent that cannot be found (or the
    file found there is another archive). The message names the parent's
    identity and every place tried; pass ``parent_dirs`` to look elsewhere."""


class InvalidInputError(HexzError, ValueError):
    """The input is not what the call takes: not a ``.hxz`` archive (a plain
    ``.gguf`` say), a malformed safetensors/GGUF file to store, an argument
    out of range."""


class InvalidIndexError(InvalidInputError, IndexError):
    """An index or slice does not fit the tensor's shape: out of bounds, or
    more indices than the tensor has dimensions."""


class NotFoundError(HexzError, KeyError):
    """No tensor, file or key of that name in the archive."""


class ArchiveNotFoundError(HexzError, FileNotFoundError):
    """The archive (or source) file does not exist."""


class UnsupportedError(HexzError):
    """The archive needs a newer format version, or a codec this build lacks,
    or the operation is not supported for this archive."""


class HexzIOError(HexzError, OSError):
    """Reading or writing a file failed; the message keeps the OS error."""


class HexzMemoryError(HexzError, MemoryError):
    """Memory could not be allocated, or a memory cap was reached."""


class CancelledError(HexzError):
    """The operation was cancelled (a progress callback asked to stop)."""


class HexzInternalError(HexzError):
    """A contained internal failure (a bug; please report it)."""


class SignatureError(HexzError):
    """Trusted keys were given and the archive carries no valid signature by
    one of them: unsigned, signed by another key, or changed since it was
    signed (format 1.4). Nothing was read from it."""


class EncryptionKeyError(HexzError):
    """The archive is encrypted (format 1.5) and no key was given (``code``
    ``"KeyRequired"``), or none of the identities and passphrases given
    opens it (``"WrongKey"``). Nothing was read from it. Damaged ciphertext
    is a :class:`CorruptArchiveError` (``"Decrypt"``) instead."""


#: The class of each status category (hexz_status_category's names).
CATEGORY_CLASSES: "dict[str, type[HexzError]]" = {
    "OK": HexzError,
    "INVALID_INPUT": InvalidInputError,
    "NOT_FOUND": NotFoundError,
    "CORRUPT": CorruptArchiveError,
    "PARENT_MISSING": ParentMissingError,
    "UNSUPPORTED": UnsupportedError,
    "IO": HexzIOError,
    "OUT_OF_MEMORY": HexzMemoryError,
    "CANCELLED": CancelledError,
    "INTERNAL": HexzInternalError,
    "SIGNATURE": SignatureError,
    "KEY": EncryptionKeyError,
}


def _class_for(category: str, missing_file: bool) -> "type[HexzError]":
    """The class of an error of `category`; a file that does not exist
    (the OS said so) is an :class:`ArchiveNotFoundError`."""
    if missing_file:
        return ArchiveNotFoundError
    return CATEGORY_CLASSES.get(category, HexzInternalError)
