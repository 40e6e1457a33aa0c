"""What the FAQ derives from the knowledge base, kept on disk between runs.

Fitting the topic classifier, analysing every phrasing and reading jieba's dictionary take seconds;
reading their results back takes milliseconds. Each result is a file in `cache_directory()` named by
a digest of everything it was built from (the knowledge base and examples, the matching code, the
versions of the libraries that built it): when any of those changes the name changes, the result is
built again, and the old file is never read. A file is written under a temporary name and renamed,
so a process starting at the same time reads a whole file or none. When the directory cannot be
written, results live in memory only, as they did before the cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import marshal
import mmap
import os
import struct
import sys
import tempfile
from array import array
from collections.abc import Iterable
from contextlib import suppress
from functools import lru_cache
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CACHE_DIRECTORY_VARIABLE = "FAQ_CACHE_DIR"
APPLICATION = "repay-bot"
KEPT_VERSIONS = 8
"""Files of one kind kept (most recently used first): a knowledge base edited often, or the tests'
own copies, do not fill the disk."""
DICTIONARY_FORMAT = 1
"""The layout of a stored `ChineseDictionary`; its name also holds jieba's version, its dictionary
file's size and time, and Python's version (marshal's format)."""
_LENGTH = struct.Struct("<Q")


def cache_directory() -> Path | None:
    """`$FAQ_CACHE_DIR`, else `$XDG_CACHE_HOME/repay-bot`, else `~/.cache/repay-bot`; None without a home."""
    configured = os.environ.get(CACHE_DIRECTORY_VARIABLE, "").strip()
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    if base:
        return Path(base) / APPLICATION
    try:
        return Path.home() / ".cache" / APPLICATION
    except RuntimeError:
        return None


def digest(*parts: str | bytes) -> str:
    """A short hex digest of `parts`, each kept apart from the next (("ab", "c") is not ("a", "bc"))."""
    hashed = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8") if isinstance(part, str) else part
        hashed.update(_LENGTH.pack(len(data)))
        hashed.update(data)
    return hashed.hexdigest()[:32]


def file_digest(paths: Iterable[Path]) -> str:
    """The digest of the files' contents (a missing file counts as empty)."""
    contents: list[bytes] = []
    for path in paths:
        try:
            contents.append(Path(path).read_bytes())
        except OSError:
            contents.append(b"")
    return digest(*contents)


def read(name: str) -> bytes | None:
    """The cached file `name`, or None; reading it marks it recently used."""
    directory = cache_directory()
    if directory is None:
        return None
    path = directory / name
    try:
        data = path.read_bytes()
    except OSError:
        return None
    with suppress(OSError):
        os.utime(path)
    return data


def write(name: str, data: bytes) -> bool:
    """Store `data` as `name` atomically; False (and a log line) when the directory is not writable."""
    directory = cache_directory()
    if directory is None:
        return False
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".part")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
            os.replace(temporary, directory / name)
        except BaseException:
            with suppress(OSError):
                os.unlink(temporary)
            raise
    except OSError as error:
        log.warning("FAQ cache: cannot write %s (%s); built in memory at every start", directory, error)
        return False
    _forget_old_versions(directory, name)
    return True


def _forget_old_versions(directory: Path, name: str) -> None:
    """Delete all but the KEPT_VERSIONS most recently used files of `name`'s kind (its name up to the
    digest)."""
    kind = name.rsplit("-", 1)[0] + "-"
    try:
        versions = [path for path in directory.iterdir() if path.name.startswith(kind)]
        versions.sort(key=lambda path: path.stat().st_mtime, reverse=True)
    except OSError:
        return
    for path in versions[KEPT_VERSIONS:]:
        with suppress(OSError):
            path.unlink()


# ---------------------------------------------------------------------------------------------
# A model: a JSON header and a flat array of float64 numbers, read without any numeric library.


def pack_model(header: dict[str, Any], numbers: array) -> bytes:
    """The header's length (8 bytes), the header as JSON, then the numbers (little-endian float64)."""
    encoded = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if sys.byteorder != "little":
        numbers = array("d", numbers)
        numbers.byteswap()
    return _LENGTH.pack(len(encoded)) + encoded + numbers.tobytes()


def unpack_model(data: bytes) -> tuple[dict[str, Any], array] | None:
    """The header and the numbers of a packed model, or None for a damaged file."""
    try:
        (length,) = _LENGTH.unpack_from(data, 0)
        start = _LENGTH.size + length
        header = json.loads(data[_LENGTH.size : start].decode("utf-8"))
        if not isinstance(header, dict) or (len(data) - start) % 8:
            return None
        numbers = array("d")
        numbers.frombytes(memoryview(data)[start:])
    except (struct.error, ValueError, UnicodeDecodeError):
        return None
    if sys.byteorder != "little":
        numbers.byteswap()
    return header, numbers


# ---------------------------------------------------------------------------------------------
# jieba's dictionary, read by first character.


class ChineseDictionary(dict):
    """jieba's word frequencies (`Tokenizer.FREQ`), read from a file one first character at a time.

    jieba loads its whole dictionary (half a million words and prefixes) before cutting the first
    sentence, which takes about half a second even from its own cache. Every word jieba looks up
    while cutting starts with a character of the text, so the words of the text's characters are all
    it needs: `cover(text)` reads those not read yet. The tokenizer of `jieba_tokenizer` covers a
    text before cutting it and a word before adding it, and then cuts exactly as with the whole
    dictionary loaded, with plain dict lookups.
    """

    def __init__(self, data: mmap.mmap | bytes) -> None:
        super().__init__()
        (length,) = _LENGTH.unpack_from(data, 0)
        start = _LENGTH.size + length
        self.total, self._unread = marshal.loads(data[_LENGTH.size : start])
        end = max((offset + size for offset, size in self._unread.values()), default=0)
        if not isinstance(self.total, int) or start + end != len(data):
            raise ValueError("not a whole dictionary")
        self._data = data
        self._start = start

    @staticmethod
    def pack(frequencies: dict[str, int], total: int) -> bytes:
        by_first: dict[str, dict[str, int]] = {}
        for word, frequency in frequencies.items():
            by_first.setdefault(word[0], {})[word] = frequency
        spans: dict[str, tuple[int, int]] = {}
        blobs: list[bytes] = []
        offset = 0
        for first, words in by_first.items():
            blob = marshal.dumps(words)
            spans[first] = (offset, len(blob))
            blobs.append(blob)
            offset += len(blob)
        header = marshal.dumps((total, spans))
        return _LENGTH.pack(len(header)) + header + b"".join(blobs)

    @classmethod
    def open(cls, path: Path) -> ChineseDictionary | None:
        """The dictionary stored at `path`, mapped into memory; None when missing or damaged."""
        try:
            with path.open("rb") as file:
                data = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
            return cls(data)
        except (OSError, ValueError, EOFError, TypeError, AttributeError, struct.error):
            return None

    def cover(self, text: str) -> None:
        """Read the words that start with a character of `text`, those not read yet."""
        for first in self._unread.keys() & set(text):
            offset, length = self._unread.pop(first)
            start = self._start + offset
            # words added to the tokenizer since start with characters already read: none is replaced
            self.update(marshal.loads(self._data[start : start + length]))


@lru_cache(maxsize=1)
def _covering_tokenizer(jieba: Any) -> type:
    class CoveringTokenizer(jieba.Tokenizer):
        """A jieba tokenizer over a `ChineseDictionary`: the words a text or a new word may need are
        read before jieba looks them up."""

        def cut(self, sentence: str, *arguments: Any, **options: Any) -> Any:
            self.FREQ.cover(sentence)
            return super().cut(sentence, *arguments, **options)

        def add_word(self, word: str, freq: int | None = None, tag: str | None = None) -> None:
            self.FREQ.cover(word)
            super().add_word(word, freq, tag)

    return CoveringTokenizer


def jieba_tokenizer() -> Any:
    """A new jieba `Tokenizer` with jieba's own dictionary, read through a cached `ChineseDictionary`.

    The first time (or after jieba changed) jieba loads its dictionary as usual and it is stored for
    the next start.
    """
    jieba = _import_jieba()
    source = Path(jieba.__file__).parent / jieba.DEFAULT_DICT_NAME
    directory = cache_directory()
    try:
        stat = source.stat()
    except OSError:
        directory = None
    if directory is not None:
        made_from = (DICTIONARY_FORMAT, jieba.__version__, stat.st_size, stat.st_mtime_ns, sys.version)
        name = f"jieba-dictionary-{digest(*map(str, made_from))}.bin"
        dictionary = ChineseDictionary.open(directory / name)
        if dictionary is not None:
            with suppress(OSError):
                os.utime(directory / name)
            tokenizer = _covering_tokenizer(jieba)()
            tokenizer.FREQ, tokenizer.total, tokenizer.initialized = dictionary, dictionary.total, True
            return tokenizer
    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    if directory is not None:
        write(name, ChineseDictionary.pack(tokenizer.FREQ, tokenizer.total))
    return tokenizer


def _import_jieba() -> Any:
    """jieba, imported without pkg_resources: jieba imports it (a third of a second) only to open its
    own data files, and opens them directly when it is not there."""
    if "jieba" not in sys.modules and "pkg_resources" not in sys.modules:
        sys.modules["pkg_resources"] = None  # type: ignore[assignment]
        try:
            import jieba
        finally:
            if sys.modules.get("pkg_resources", False) is None:
                del sys.modules["pkg_resources"]
    import jieba

    jieba.setLogLevel(logging.WARNING)
    return jieba
