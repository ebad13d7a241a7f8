"""The vocabulary index: n-gram → its index (its row of the first Dense
kernel), read from a memory map instead of a dictionary built at start-up.

``vocabulary.txt`` holds one n-gram a line in index order (line 0 is
``[UNK]``, TextVectorization's out-of-vocabulary bucket). Turning its 50,000
lines into a dictionary took 6-15 ms of a one-message ``predict``, longer
than scoring the message. ``vocabulary.index``, written beside it at
training time (or by ``spamcli index-vocabulary``), is an open-addressing
hash table over those lines: a lookup reads a few bytes of the two memory
maps, so start-up reads only a header and two checksums.

Layout, all little-endian unsigned 32-bit integers after the magic:

    header   magic b"SPAMCLIV", layout version (1), term count N, slot
             count S (a power of two above N), byte size and CRC-32 of
             vocabulary.txt, CRC-32 of everything after the header
    offsets  N + 1 integers: where term i's line starts in vocabulary.txt;
             term i is the bytes up to one before entry i + 1 (its newline)
    slots    S pairs (CRC-32 of the term's UTF-8, term index + 1); 0 = empty

A key's home slot is its CRC-32 modulo S; collisions move to the next slot
(linear probing). A match is confirmed by comparing the term's bytes in
vocabulary.txt, so a hash collision can never return another term's index.
Where two lines hold the same term, the later index wins, as in a
dictionary. An index whose checksums do not match vocabulary.txt or itself
is not used: the caller falls back to the dictionary.
"""

from __future__ import annotations

import mmap
import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

INDEX_MAGIC = b"SPAMCLIV"
INDEX_LAYOUT_VERSION = 1
_HEADER = struct.Struct("<8s6I")
_PAIR = struct.Struct("<II")
_UINT32_LIMIT = 1 << 32
# At most half the slots are used, so a lookup of an unknown n-gram ends
# after about 2.5 slots on average.
_MINIMUM_SLOTS = 8


class StaleIndexError(ValueError):
    """The index is damaged or does not describe this vocabulary.txt."""


def vocabulary_terms(data: bytes) -> list[str]:
    """The terms of vocabulary.txt's bytes, as ``artifacts.read_vocabulary``
    reads them (UnicodeDecodeError for a file that is no UTF-8)."""
    terms = data.decode("utf-8").split("\n")
    if terms and terms[-1] == "":
        terms.pop()
    return terms


def build_index(vocabulary_data: bytes) -> bytes:
    """The index file's bytes for vocabulary.txt's bytes."""
    if b"\r" in vocabulary_data:
        # read_vocabulary reads text with universal newlines, which would
        # split a line at a carriage return: no byte offset could match it.
        raise ValueError("vocabulary.txt holds a carriage return")
    terms = vocabulary_terms(vocabulary_data)
    encoded = [term.encode("utf-8") for term in terms]
    offsets = []
    position = 0
    for term in encoded:
        offsets.append(position)
        position += len(term) + 1
    offsets.append(position)
    if position >= _UINT32_LIMIT:
        raise ValueError("vocabulary.txt is too large to index")
    slot_count = _MINIMUM_SLOTS
    while slot_count < 2 * len(terms):
        slot_count *= 2
    mask = slot_count - 1
    hashes = [0] * slot_count
    entries = [0] * slot_count  # term index + 1
    for index, term in enumerate(encoded):
        term_hash = zlib.crc32(term)
        slot = term_hash & mask
        while entries[slot] and not (
            hashes[slot] == term_hash and encoded[entries[slot] - 1] == term
        ):
            slot = (slot + 1) & mask
        hashes[slot] = term_hash
        entries[slot] = index + 1
    pairs = [value for pair in zip(hashes, entries, strict=True) for value in pair]
    body = struct.pack(f"<{len(offsets)}I", *offsets) + struct.pack(f"<{len(pairs)}I", *pairs)
    header = _HEADER.pack(
        INDEX_MAGIC,
        INDEX_LAYOUT_VERSION,
        len(terms),
        slot_count,
        len(vocabulary_data),
        zlib.crc32(vocabulary_data),
        zlib.crc32(body),
    )
    return header + body


class VocabularyIndex:
    """vocabulary.index and vocabulary.txt, memory-mapped; ``get`` works as
    a dictionary's would on ``{term: index}``."""

    def __init__(self, index_path: Path, vocabulary_path: Path) -> None:
        """Raise OSError if a file cannot be read, StaleIndexError if the
        index does not match vocabulary.txt or is damaged."""
        with open(vocabulary_path, "rb") as handle:
            vocabulary_size = _file_size(handle)
            if vocabulary_size == 0:
                raise StaleIndexError("vocabulary.txt is empty")
            self._terms = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        with open(index_path, "rb") as handle:
            if _file_size(handle) < _HEADER.size:
                self._terms.close()
                raise StaleIndexError("the index is shorter than its header")
            self._map = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            self._check(vocabulary_size)
        except StaleIndexError:
            self.close()
            raise

    def _check(self, vocabulary_size: int) -> None:
        magic, layout, term_count, slot_count, size, vocabulary_crc, body_crc = _HEADER.unpack_from(
            self._map, 0
        )
        if magic != INDEX_MAGIC or layout != INDEX_LAYOUT_VERSION:
            raise StaleIndexError("not a vocabulary index of a known layout")
        if slot_count < _MINIMUM_SLOTS or slot_count & (slot_count - 1) or slot_count <= term_count:
            raise StaleIndexError("the index has an impossible slot count")
        expected_length = _HEADER.size + 4 * (term_count + 1) + _PAIR.size * slot_count
        if len(self._map) != expected_length:
            raise StaleIndexError("the index's length does not match its header")
        # 0.5 ms for both checksums on the built-in model's 0.5 MB vocabulary.
        if size != vocabulary_size or zlib.crc32(self._terms) != vocabulary_crc:
            raise StaleIndexError("the index was written for another vocabulary.txt")
        if zlib.crc32(memoryview(self._map)[_HEADER.size :]) != body_crc:
            raise StaleIndexError("the index is damaged")
        self._term_count = term_count
        self._mask = slot_count - 1
        self._slots_start = _HEADER.size + 4 * (term_count + 1)

    def __len__(self) -> int:
        return self._term_count

    def terms(self) -> list[str]:
        """Every term in index order, from the mapped vocabulary.txt."""
        return vocabulary_terms(bytes(self._terms))

    def get(self, term: str, default: int) -> int:
        """The term's index, or ``default`` if it is not in the vocabulary."""
        # surrogatepass: a string no UTF-8 file can hold matches no term.
        key = term.encode("utf-8", "surrogatepass")
        key_hash = zlib.crc32(key)
        mask = self._mask
        slots_start = self._slots_start
        index_map = self._map
        slot = key_hash & mask
        while True:
            stored_hash, entry = _PAIR.unpack_from(index_map, slots_start + 8 * slot)
            if not entry:
                return default
            if stored_hash == key_hash:
                start, end = _PAIR.unpack_from(index_map, _HEADER.size + 4 * (entry - 1))
                if self._terms[start : end - 1] == key:
                    return entry - 1
            slot = (slot + 1) & mask

    def close(self) -> None:
        self._map.close()
        self._terms.close()


def _file_size(handle: BinaryIO) -> int:
    return os.fstat(handle.fileno()).st_size
