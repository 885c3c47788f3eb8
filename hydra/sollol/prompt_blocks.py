"""A prompt as a chain of block hashes: what the prefix cache compares, with no text kept.

A node's KV cache holds the tokens of the prompts it evaluated; a new prompt reuses the longest
common prefix. Here a prompt (the messages as sent: system, history, the new turn) is cut into
blocks: every message starts a block, and a long message is cut every ``BLOCK_CHARS`` characters.
Block ``i``'s hash covers blocks ``0..i`` (each hash chains the one before), so two prompts share
their first ``k`` hashes exactly when they share their first ``k`` blocks: a prefix is one lookup.

The hashes are keyed BLAKE2b with a random key made per process, so they cannot be matched against
a dictionary of likely prompts, and they mean nothing outside this process. Tokens are estimated
from characters (4 per token, a few per message for the chat template), the same rule as the
router's other prompt estimates; the estimate is only ever compared with itself.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

BLOCK_CHARS = 256          # about 64 tokens: small enough to follow llama.cpp's token-level reuse closely
CHARS_PER_TOKEN = 4
TEMPLATE_TOKENS = 4        # the chat template's role markers around each message
MAX_BLOCKS = 4096          # ~1M characters; a longer prompt's tail is not compared (it could not be cached anyway)
_KEY = os.urandom(32)      # per process: the hashes are not comparable across processes, by design
_DIGEST = 8


@dataclass(frozen=True)
class PromptBlocks:
    """A prompt's block hashes and, for each, the estimated tokens up to and including it."""

    hashes: tuple[int, ...]
    ends: tuple[int, ...]      # cumulative tokens at the end of each block
    tokens: int                # the whole prompt's estimated tokens
    chars: int = 0             # characters hashed, and messages read: where ``extended`` goes on from
    messages: int = 0

    def prefix_tokens(self, upto: int) -> int:
        """Tokens in the first ``upto`` blocks."""
        return self.ends[upto - 1] if upto > 0 else 0


EMPTY = PromptBlocks((), (), 0)


def prompt_blocks(messages: Iterable[Mapping[str, Any]]) -> PromptBlocks:
    """The block chain of ``messages`` (Ollama's chat shape; images and tool calls count as content)."""
    return extended(EMPTY, messages)


def extended(blocks: PromptBlocks, messages: Iterable[Mapping[str, Any]]) -> PromptBlocks:
    """The chain of ``blocks``' messages followed by ``messages``, hashing only the new ones: the same as
    ``prompt_blocks`` of all of them (an answer recorded after its prompt costs only the answer)."""
    hashes = list(blocks.hashes)
    ends = list(blocks.ends)
    chars = blocks.chars
    count = blocks.messages
    previous = hashes[-1].to_bytes(_DIGEST, "big") if hashes else b""
    for message in messages:
        count += 1
        pieces = _pieces(message)
        for index, piece in enumerate(pieces):
            if len(hashes) >= MAX_BLOCKS:
                break
            head = (str(message.get("role", "user")).encode() + b"\x00") if index == 0 else b""
            digest = hashlib.blake2b(previous + head + piece, digest_size=_DIGEST, key=_KEY).digest()
            previous = digest
            chars += len(piece)
            hashes.append(int.from_bytes(digest, "big"))
            ends.append(chars // CHARS_PER_TOKEN + TEMPLATE_TOKENS * count)
    total = ends[-1] if ends else 0
    return PromptBlocks(tuple(hashes), tuple(ends), max(total, 1) if count else 0, chars, count)


def _pieces(message: Mapping[str, Any]) -> list[bytes]:
    """A message's content cut into blocks; what else it carries (images, tool calls) in its first block."""
    content = message.get("content")
    text = content if isinstance(content, str) else ("" if content is None else json.dumps(content, default=str))
    extra = b""
    for image in message.get("images") or ():
        data = image if isinstance(image, bytes | bytearray) else str(image).encode()
        extra += hashlib.blake2b(bytes(data), digest_size=_DIGEST, key=_KEY).digest()
    if message.get("tool_calls"):
        extra += json.dumps(message["tool_calls"], sort_keys=True, default=str).encode()
    cuts = [text[i:i + BLOCK_CHARS] for i in range(0, len(text), BLOCK_CHARS)] or [""]
    encoded = [c.encode("utf-8", "surrogatepass") for c in cuts]
    encoded[0] = extra + b"\x00" + encoded[0]
    return encoded


def common_blocks(a: PromptBlocks, hashes: frozenset[int] | set[int]) -> int:
    """How many leading blocks of ``a`` are in ``hashes`` (a recorded prompt's chain): binary search,
    since the chain is prefix-closed (block i is present only if every block before it is)."""
    low, high = 0, len(a.hashes)
    while low < high:
        middle = (low + high + 1) // 2
        if a.hashes[middle - 1] in hashes:
            low = middle
        else:
            high = middle - 1
    return low
