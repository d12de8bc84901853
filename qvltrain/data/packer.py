"""Pack planning from sizes alone: which samples share a pack of `seq_len` tokens and `max_patches` ViT rows.

The planner never sees pixels. It works on `PlanItem`s (a key plus the sample's token and patch
counts from `meta`), so a window of thousands of samples costs only their metadata; the pipeline
decodes a sample once its pack is final.

`WindowedBestFitDecreasing` (the planner the pipeline uses) buffers `window` items and plans them in
one round. Each round fills packs by minimum slack (`min_slack_packs`, the default `method`): the
largest item left opens a pack, and a bounded depth-first search (larger items first) picks the
subset of the others that leaves the least room on the round's binding budget (tokens, or patches
when the window's patches fill the packs first); items with nothing on that budget (text when the
patches bind) then go into the fullest pack they still fit. The round emits every pack except the
`carry_packs` least-filled ones (at most half a window of items), whose items go back into the
window to meet the next arrivals: the leftovers of one round are the gap-fillers of the next. An
item is carried only while fewer than `max_wait` windows of samples arrived after it, so none waits
forever.
`method="best_fit"` is the earlier rule (sort largest first, each item into the pack with the most
tokens it still fits; one pack carried), kept as the benchmarks' baseline. Why this algorithm:
measured in `python -m apps.bench.packing` against best fit, next-fit in arrival order, best fit
over open packs and padding (docs/benchmarks.md): 99.97% real tokens at seq_len 8192 when the tokens
bind (best fit: 99.83%), and 0.8% over a lower bound on the pack count when the patches bind (best
fit: 1.4%), at ~10-20 us of planning per sample.

Everything here is deterministic: ties are broken by arrival order, so a replay plans the same packs,
and a round depends only on the set of items in the window (its state).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from operator import attrgetter


@dataclass
class PlanItem:
    """One sample as the planner sees it."""

    key: str
    """Unique id of the sample within the pipeline (the pipeline maps it back to the sample)."""
    num_tokens: int
    """LLM tokens (text + visual blocks), at most seq_len."""
    num_patches: int
    """ViT patch rows (t*h*w summed over the sample's images and videos), at most max_patches."""
    arrival: int = 0
    """Arrival index, counting up by one per sample (the pipeline numbers each reader's arrivals);
    breaks ties so plans are reproducible, and tells the window how long an item has waited."""
    cost: float = 0.0
    """Relative compute cost from metadata (`qvltrain.data.balance.CostModel`); only balancing reads it."""


@dataclass
class Budget:
    """The two limits of one pack."""

    seq_len: int
    """LLM tokens per pack."""
    max_patches: int
    """ViT patch rows per pack."""

    def check(self, item: PlanItem) -> None:
        assert 0 < item.num_tokens <= self.seq_len and 0 <= item.num_patches <= self.max_patches, (
            f"{item.key}: {item.num_tokens} tokens / {item.num_patches} patches do not fit an empty pack "
            f"({self.seq_len} / {self.max_patches}); the pipeline must skip or cap such samples first"
        )


class _OpenPack:
    __slots__ = ("items", "tokens", "patches")

    def __init__(self) -> None:
        self.items: list[PlanItem] = []
        self.tokens = 0
        self.patches = 0

    def add(self, item: PlanItem) -> None:
        self.items.append(item)
        self.tokens += item.num_tokens
        self.patches += item.num_patches


def _size_key(budget: Budget):
    # Largest first by the scarcer of the two budgets; arrival breaks ties (stable, reproducible).
    def key(item: PlanItem) -> tuple[float, int]:
        size = max(item.num_tokens / budget.seq_len, item.num_patches / budget.max_patches)
        return (-size, item.arrival)

    return key


def best_fit_decreasing(items: list[PlanItem], budget: Budget) -> list[list[PlanItem]]:
    """Packs of `items` (best fit on tokens among packs that also fit the patches), fullest first."""
    packs: list[_OpenPack] = []
    for item in sorted(items, key=_size_key(budget)):
        best: _OpenPack | None = None
        for pack in packs:
            if (
                pack.tokens + item.num_tokens <= budget.seq_len
                and pack.patches + item.num_patches <= budget.max_patches
                and (best is None or pack.tokens > best.tokens)
            ):
                best = pack
        if best is None:
            best = _OpenPack()
            packs.append(best)
        best.add(item)
    packs.sort(key=lambda pack: (-pack.tokens, pack.items[0].arrival))
    return [pack.items for pack in packs]


def min_slack_packs(items: list[PlanItem], budget: Budget, nodes: int = 50) -> list[list[PlanItem]]:
    """Packs of `items` filled by minimum slack on the binding budget, fullest first (module docstring).

    The binding budget is the one the items fill first (patches when sum(patches) / max_patches is the
    larger, tokens otherwise). `nodes` bounds each pack's search: a deeper search fills the first
    packs more exactly but with the small items the later packs need (50 measured best).
    """
    by_patches = sum(i.num_patches for i in items) * budget.seq_len > sum(i.num_tokens for i in items) * (
        budget.max_patches
    )
    binding, second = ("num_patches", "num_tokens") if by_patches else ("num_tokens", "num_patches")
    size, other = attrgetter(binding), attrgetter(second)
    capacities = (budget.max_patches, budget.seq_len) if by_patches else (budget.seq_len, budget.max_patches)
    # Largest first on the binding budget; the smaller other size first among equals, then arrival.
    left = sorted((i for i in items if size(i) > 0), key=lambda i: (-size(i), other(i), i.arrival))
    negated = [-size(item) for item in left]  # ascending, for bisect
    packs: list[_OpenPack] = []
    while left:
        negated.pop(0)
        pack = _OpenPack()
        pack.add(left.pop(0))
        best = _best_subset(
            left, negated, other, (size(pack.items[0]), other(pack.items[0])), capacities, nodes
        )
        for index in sorted(best, reverse=True):
            pack.add(left.pop(index))
            negated.pop(index)
        packs.append(pack)
    # Items with nothing on the binding budget: into the pack fullest on it that they fit.
    filled = attrgetter("patches" if by_patches else "tokens")
    for item in sorted((i for i in items if size(i) == 0), key=lambda i: (-other(i), i.arrival)):
        target: _OpenPack | None = None
        for pack in packs:
            if (
                pack.tokens + item.num_tokens <= budget.seq_len
                and pack.patches + item.num_patches <= budget.max_patches
                and (target is None or filled(pack) > filled(target))
            ):
                target = pack
        if target is None:
            target = _OpenPack()
            packs.append(target)
        target.add(item)
    # Fullest first by the fuller of the two budgets (exact integers); among equals the pack with the
    # oldest item first, so a window carries its newest items when fills tie.
    packs.sort(
        key=lambda pack: (
            -max(pack.tokens * budget.max_patches, pack.patches * budget.seq_len),
            min(item.arrival for item in pack.items),
        )
    )
    return [pack.items for pack in packs]


def _best_subset(
    left: list[PlanItem],
    negated: list[int],
    other: Callable[[PlanItem], int],
    used: tuple[int, int],
    capacity: tuple[int, int],
    nodes: int,
) -> list[int]:
    """Indices into `left` (sorted largest first, sizes -`negated`) that fill `capacity[0] - used[0]` best.

    Depth-first, larger items first, at most `nodes` candidates looked at; an item of the size of the
    sibling just tried is skipped (it gives the same sums); the other budget (`other`, index 1) must
    fit too. The first subset found with the least room wins.
    """
    best_filled, best = used[0], []
    chosen: list[int] = []
    looked = 0

    def search(start: int, filled: int, other_filled: int) -> bool:
        nonlocal best_filled, best, looked
        if filled > best_filled:
            best_filled, best = filled, list(chosen)
            if filled == capacity[0]:
                return True
        tried = None
        for index in range(bisect_left(negated, filled - capacity[0], lo=start), len(left)):
            looked += 1
            if looked > nodes:
                return True
            item_size, item_other = -negated[index], other(left[index])
            if item_size == tried or other_filled + item_other > capacity[1]:
                continue
            tried = item_size
            chosen.append(index)
            if search(index + 1, filled + item_size, other_filled + item_other):
                return True
            chosen.pop()
        return False

    search(0, *used)
    return best


MAX_WAIT = 8
"""Windows of later arrivals an item may wait before its pack is emitted whatever its fill."""


class WindowedBestFitDecreasing:
    """Streaming planner: `add` items, `pop` planned packs; `pending` is its whole state (items).

    A round runs when the window holds `window` items; `flush` runs rounds until nothing is left
    (end of finite data, benchmarks). `method` fills a round's packs: "min_slack" (`min_slack_packs`)
    or "best_fit" (`best_fit_decreasing`, the earlier rule). Each round carries its least-filled packs
    back into the window: at most `carry_packs` of them (None: 16 for min_slack, 1 for best_fit,
    measured in apps.bench.packing), and beyond the first only while their items stay within half a
    window, so a window always takes new items; never a pack with an item that `max_wait` windows of
    later arrivals have passed (None: no bound, as best fit had).
    """

    METHODS = {"min_slack": (min_slack_packs, 16), "best_fit": (best_fit_decreasing, 1)}

    def __init__(
        self,
        budget: Budget,
        window: int = 256,
        carry_packs: int | None = None,
        min_ready: int = 1,
        method: str = "min_slack",
        max_wait: int | None = MAX_WAIT,
    ):
        if method not in self.METHODS:
            raise ValueError(f"packer: method={method!r} is not one of {sorted(self.METHODS)}")
        self.plan, default_carry = self.METHODS[method]
        carry_packs = default_carry if carry_packs is None else carry_packs
        if window < 1 or carry_packs < 0 or min_ready < 1:
            raise ValueError(
                f"packer: window={window} and min_ready={min_ready} must be >= 1, carry_packs={carry_packs} >= 0"
            )
        self.budget, self.window, self.carry_packs, self.method = budget, window, carry_packs, method
        self.min_ready = min_ready
        """A round runs only while fewer packs than this are ready (the balance's lookahead)."""
        self.max_wait = None if max_wait is None else max_wait * window
        """Later arrivals (by `PlanItem.arrival`) after which an item is no longer carried (None: no bound)."""
        self.pending: list[PlanItem] = []
        """Items waiting in the window, in arrival order."""
        self.ready: deque[list[PlanItem]] = deque()
        """Planned packs not yet popped, in emission order."""

    def add(self, item: PlanItem) -> None:
        self.budget.check(item)
        self.pending.append(item)
        if len(self.pending) >= self.window and len(self.ready) < self.min_ready:
            self._round(final=False)

    def pop(self) -> list[PlanItem] | None:
        """The next planned pack, or None when the window is not full yet."""
        return self.ready.popleft() if self.ready else None

    def flush(self) -> None:
        while self.pending:
            self._round(final=True)

    def _round(self, final: bool) -> None:
        packs = self.plan(self.pending, self.budget)  # fullest first
        carried: list[list[PlanItem]] = []
        if not final:
            # An item with more than max_wait arrivals after it is due: its pack goes out.
            newest = max(item.arrival for item in self.pending)
            due = -1 if self.max_wait is None else newest - self.max_wait
            num_items = 0
            for pack in reversed(packs[1:]):  # least filled first; the fullest always goes out
                if len(carried) == self.carry_packs or (carried and num_items + len(pack) > self.window // 2):
                    break
                if min(item.arrival for item in pack) > due:
                    carried.append(pack)
                    num_items += len(pack)
        kept = {id(pack) for pack in carried}
        self.ready.extend(pack for pack in packs if id(pack) not in kept)
        self.pending = sorted((item for pack in carried for item in pack), key=lambda item: item.arrival)


class NextFit:
    """Baseline: packs filled in arrival order, a new one whenever the next item does not fit."""

    def __init__(self, budget: Budget):
        self.budget = budget
        self._open = _OpenPack()
        self.ready: deque[list[PlanItem]] = deque()

    def add(self, item: PlanItem) -> None:
        self.budget.check(item)
        pack = self._open
        if (
            pack.tokens + item.num_tokens > self.budget.seq_len
            or pack.patches + item.num_patches > self.budget.max_patches
        ):
            self.ready.append(pack.items)
            self._open = pack = _OpenPack()
        pack.add(item)

    def pop(self) -> list[PlanItem] | None:
        return self.ready.popleft() if self.ready else None

    def flush(self) -> None:
        if self._open.items:
            self.ready.append(self._open.items)
            self._open = _OpenPack()


class OnlineBestFit:
    """Baseline: best fit over the `open_packs` most recent packs; the fullest is closed when one more opens."""

    def __init__(self, budget: Budget, open_packs: int = 16):
        self.budget, self.open_packs = budget, open_packs
        self._open: list[_OpenPack] = []
        self.ready: deque[list[PlanItem]] = deque()

    def add(self, item: PlanItem) -> None:
        self.budget.check(item)
        fits = [
            pack
            for pack in self._open
            if pack.tokens + item.num_tokens <= self.budget.seq_len
            and pack.patches + item.num_patches <= self.budget.max_patches
        ]
        if fits:
            max(fits, key=lambda pack: pack.tokens).add(item)
            return
        if len(self._open) >= self.open_packs:
            fullest = max(self._open, key=lambda pack: pack.tokens)
            self._open.remove(fullest)
            self.ready.append(fullest.items)
        pack = _OpenPack()
        pack.add(item)
        self._open.append(pack)

    def pop(self) -> list[PlanItem] | None:
        return self.ready.popleft() if self.ready else None

    def flush(self) -> None:
        self.ready.extend(pack.items for pack in self._open)
        self._open = []


def plan_all(planner, items: Iterable[PlanItem]) -> Iterator[list[PlanItem]]:
    """Every pack `planner` makes of a finite stream (benchmarks and tests)."""
    for item in items:
        planner.add(item)
        while (pack := planner.pop()) is not None:
            yield pack
    planner.flush()
    while (pack := planner.pop()) is not None:
        yield pack
