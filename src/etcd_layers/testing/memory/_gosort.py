"""Go 1.16's `sort.Sort`, which etcd 3.5 uses to sort a range: the same order among equal items.

`sort.Sort` is not stable: keys whose sort values are equal (say, the same version) come out in
the order its quicksort leaves them, which is what etcd answers. A stable sort would give the
same set in another order, so MemoryEtcd runs this port of Go 1.16's algorithm (quicksort with
Tukey's ninther, a heapsort fallback, and a gap-6 shell pass before insertion sort on twelve
items or fewer) whenever the sort values are not all distinct. Pure: lists in, lists out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

__all__ = ["go_sorted"]

T = TypeVar("T")


def go_sorted(items: Sequence[T], key: Callable[[T], Any], *, reverse: bool) -> list[T]:
    """Return `items` ordered by `key` as Go's `sort.Sort` (of `sort.Reverse` if `reverse`)."""
    keys = [key(item) for item in items]
    if len(set(keys)) == len(keys):  # no ties: every correct sort agrees, so take the fast one
        return sorted(items, key=key, reverse=reverse)
    data = list(zip(keys, items, strict=True))
    _GoSort(data, reverse).sort()
    return [item for _, item in data]


class _GoSort:
    """One run of Go's `quickSort(data, 0, n, maxDepth(n))` over (key, item) pairs."""

    def __init__(self, data: list[tuple[Any, T]], reverse: bool) -> None:
        self.data = data
        self.reverse = reverse

    def less(self, i: int, j: int) -> bool:
        a, b = self.data[i][0], self.data[j][0]
        return bool(b < a) if self.reverse else bool(a < b)

    def swap(self, i: int, j: int) -> None:
        data = self.data
        data[i], data[j] = data[j], data[i]

    def sort(self) -> None:
        n = len(self.data)
        depth, i = 0, n
        while i > 0:
            depth += 1
            i >>= 1
        self.quick_sort(0, n, depth * 2)

    def insertion_sort(self, a: int, b: int) -> None:
        for i in range(a + 1, b):
            j = i
            while j > a and self.less(j, j - 1):
                self.swap(j, j - 1)
                j -= 1

    def sift_down(self, lo: int, hi: int, first: int) -> None:
        root = lo
        while True:
            child = 2 * root + 1
            if child >= hi:
                return
            if child + 1 < hi and self.less(first + child, first + child + 1):
                child += 1
            if not self.less(first + root, first + child):
                return
            self.swap(first + root, first + child)
            root = child

    def heap_sort(self, a: int, b: int) -> None:
        first, lo, hi = a, 0, b - a
        for i in range((hi - 1) // 2, -1, -1):
            self.sift_down(i, hi, first)
        for i in range(hi - 1, -1, -1):
            self.swap(first, first + i)
            self.sift_down(lo, i, first)

    def median_of_three(self, m1: int, m0: int, m2: int) -> None:
        if self.less(m1, m0):
            self.swap(m1, m0)
        if self.less(m2, m1):
            self.swap(m2, m1)
            if self.less(m1, m0):
                self.swap(m1, m0)

    def do_pivot(self, lo: int, hi: int) -> tuple[int, int]:
        less, swap = self.less, self.swap
        m = (lo + hi) >> 1
        if hi - lo > 40:  # Tukey's ninther
            s = (hi - lo) // 8
            self.median_of_three(lo, lo + s, lo + 2 * s)
            self.median_of_three(m, m - s, m + s)
            self.median_of_three(hi - 1, hi - 1 - s, hi - 1 - 2 * s)
        self.median_of_three(lo, m, hi - 1)
        pivot = lo
        a, c = lo + 1, hi - 1
        while a < c and less(a, pivot):
            a += 1
        b = a
        while True:
            while b < c and not less(pivot, b):
                b += 1
            while b < c and less(pivot, c - 1):
                c -= 1
            if b >= c:
                break
            swap(b, c - 1)
            b += 1
            c -= 1
        b, c = self.gather_duplicates(lo, hi, m, a, b, c)
        swap(pivot, b - 1)
        return b - 1, c

    def gather_duplicates(
        self, lo: int, hi: int, m: int, a: int, b: int, c: int
    ) -> tuple[int, int]:
        """Go's protection against many items equal to the pivot (at `lo`): return b, c."""
        less, swap, pivot = self.less, self.swap, lo
        protect = hi - c < 5
        if not protect and hi - c < (hi - lo) // 4:
            dups = 0
            if not less(pivot, hi - 1):
                swap(c, hi - 1)
                c += 1
                dups += 1
            if not less(b - 1, pivot):
                b -= 1
                dups += 1
            if not less(m, pivot):
                swap(m, b - 1)
                b -= 1
                dups += 1
            protect = dups > 1
        if protect:
            while True:
                while a < b and not less(b - 1, pivot):
                    b -= 1
                while a < b and less(a, pivot):
                    a += 1
                if a >= b:
                    break
                swap(a, b - 1)
                a += 1
                b -= 1
        return b, c

    def quick_sort(self, a: int, b: int, max_depth: int) -> None:
        while b - a > 12:
            if max_depth == 0:
                self.heap_sort(a, b)
                return
            max_depth -= 1
            mlo, mhi = self.do_pivot(a, b)
            if mlo - a < b - mhi:
                self.quick_sort(a, mlo, max_depth)
                a = mhi
            else:
                self.quick_sort(mhi, b, max_depth)
                b = mlo
        if b - a > 1:
            for i in range(a + 6, b):  # a shell sort pass with gap 6
                if self.less(i, i - 6):
                    self.swap(i, i - 6)
            self.insertion_sort(a, b)
