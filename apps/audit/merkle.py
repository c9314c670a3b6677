"""A Merkle tree over a tenant's chain entries, as RFC 9162 (Certificate Transparency 2.0) defines
it: leaf = SHA-256(0x00 || data), node = SHA-256(0x01 || left || right), the left subtree of n
leaves holding the largest power of two below n. The data of a leaf is an entry's public content
digest (SHA-256 of its canonical bytes).

Checkpoints sign the tree's root with the chain head, so an auditor holding only the public key
can check one record — its canonical bytes, an audit path, a signed checkpoint — without the
rest of the chain and without the chain's secret key (`verify_inclusion`).
"""

from __future__ import annotations

import hashlib

EMPTY_ROOT = hashlib.sha256(b"").hexdigest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


class Accumulator:
    """The root of a growing tree in O(log n) memory: a stack of perfect subtrees (a compact
    range), largest first. The root of RFC 9162's tree folds it from the right."""

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[tuple[int, bytes]] = []  # (leaves, hash)

    def append(self, data: bytes) -> None:
        node, width = leaf_hash(data), 1
        while self._stack and self._stack[-1][0] == width:
            node, width = node_hash(self._stack.pop()[1], node), width * 2
        self._stack.append((width, node))
        self.size += 1

    def root(self) -> str:
        if not self._stack:
            return EMPTY_ROOT
        node = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            node = node_hash(left, node)
        return node.hex()


def _largest_power_of_two_below(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _subtree_root(leaves: list[bytes]) -> bytes:
    accumulator = Accumulator()
    for data in leaves:
        accumulator.append(data)
    return bytes.fromhex(accumulator.root())


def inclusion_path(leaves: list[bytes], index: int) -> list[str]:
    """RFC 9162 §2.1.3.1 PATH(m, D[n]): the sibling hashes from leaf `index` (0-based) up to the root."""
    if not 0 <= index < len(leaves):
        raise ValueError(f"leaf {index} is not in a tree of {len(leaves)}")
    path: list[str] = []
    while len(leaves) > 1:
        k = _largest_power_of_two_below(len(leaves))
        if index < k:
            path.append(_subtree_root(leaves[k:]).hex())
            leaves = leaves[:k]
        else:
            path.append(_subtree_root(leaves[:k]).hex())
            leaves, index = leaves[k:], index - k
    return list(reversed(path))


def verify_inclusion(data: bytes, index: int, size: int, path: list[str], root: str) -> bool:
    """RFC 9162 §2.1.3.2: does the leaf of `data` sit at `index` (0-based) of the tree of `size`
    leaves whose root is `root`?"""
    if not 0 <= index < size:
        return False
    fn, sn, node = index, size - 1, leaf_hash(data)
    for sibling_hex in path:
        sibling = bytes.fromhex(sibling_hex)
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            node = node_hash(sibling, node)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            node = node_hash(node, sibling)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and node.hex() == root
