"""The charger's random draws, and a generator that holds only its seed between them.

A charger draws rarely (its message-id prefix once, a 2.0.1 transaction id per transaction, a back-off jitter
per reconnect), but a ``random.Random`` holds its Mersenne Twister state all the time: 2.5 kB, the largest
thing an idle virtual charger kept. :class:`SeededDraws` keeps the seed and how many 32-bit words it has
drawn, and rebuilds the generator for each draw (seeded, then skipping the words already drawn), so it gives
exactly the numbers ``random.Random(seed)`` gives for the same calls, in ~100 bytes. A draw costs a seeding
and a skip that grows with the words drawn before it (a few microseconds for the few dozen words a charger
draws in a day); something that draws often should use ``random.Random``.
"""

from __future__ import annotations

import random
from typing import Protocol


class Draws(Protocol):
    """What the charger draws (``random.Random`` is one)."""

    def getrandbits(self, k: int, /) -> int: ...
    def random(self) -> float: ...
    def uniform(self, a: float, b: float) -> float: ...


class SeededDraws:
    """``random.Random(seed)``'s draws for the methods of :class:`Draws`, holding only the seed between them."""

    __slots__ = ("_seed", "_words")

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._words = 0  # 32-bit outputs of the Mersenne Twister used so far

    def _generator(self, words: int) -> random.Random:
        """The generator where it stands now, its position then moved on by ``words`` about to be drawn."""
        generator = random.Random(self._seed)
        if self._words:
            generator.getrandbits(32 * self._words)  # CPython: exactly one output per 32 bits asked for
        self._words += words
        return generator

    def getrandbits(self, k: int, /) -> int:
        if k <= 0:
            if k < 0:
                raise ValueError("number of bits must be non-negative")
            return 0
        return self._generator((k - 1) // 32 + 1).getrandbits(k)

    def random(self) -> float:
        return self._generator(2).random()  # 53 bits from two outputs

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.random()  # random.Random.uniform's formula
