"""The electrical tree of a site: grid connection → panels/feeders → stations → EVSEs (sans-IO, frozen).

Units are in the names: currents in A *per phase*, powers in W or kW, voltages phase-to-neutral in V. A
three-phase node has three limits (L1, L2, L3), not one number: a single-phase charger on L2 loads L2 only.

A charger's allocation is one number, its per-phase current limit ``i`` (what an OCPP ``A`` limit means); on
each phase it draws from it adds ``i`` and its power is ``i × V × phases in use``. A DC charger draws its
power balanced over the three phases of its feeder: ``i = P / (3 V)``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

PHASES = ("L1", "L2", "L3")
#: The IEC 61851 minimum: below ~6 A a charger cannot signal the car, so it pauses instead.
MIN_CURRENT_A = 6.0
DEFAULT_VOLTAGE = 230.0

EvseKey = tuple[str, int]
"""``(station_id, evse_id)``: OCPP 1.6 connectorId == OCPP 2.0.1 evseId."""


class TopologyError(ValueError):
    """The tree is not a valid electrical topology (duplicate ids, bad limits, bad wiring)."""


def parse_phases(text: str) -> tuple[int, ...]:
    """``"L2"`` → ``(1,)``; ``"L1L2L3"`` or ``"L2L3L1"`` (rotation) → indexes in that order."""
    parts = [text[i : i + 2] for i in range(0, len(text), 2)]
    if not parts or any(p not in PHASES for p in parts) or len(set(parts)) != len(parts):
        raise TopologyError(f"expected phases like 'L1', 'L2L3L1', got {text!r}")
    return tuple(PHASES.index(p) for p in parts)


def format_phases(phases: tuple[int, ...]) -> str:
    return "".join(PHASES[p] for p in phases)


@dataclass(frozen=True)
class Evse:
    """A leaf: one EVSE (one connector) of a station.

    ``phases`` are the site phases the EVSE's L1, L2, L3 are wired to, in order (rotation): a single-phase
    charger on the site's L2 is ``(1,)``; a three-phase charger rotated by one is ``(1, 2, 0)``. A car
    charging on one phase of a three-phase EVSE loads the first of them.
    """

    station_id: str
    evse_id: int
    phases: tuple[int, ...] = (0, 1, 2)
    max_current_a: float = 32.0
    min_current_a: float = MIN_CURRENT_A
    #: What the station may draw when it is offline or does not answer (its own failsafe), per phase.
    fallback_current_a: float = MIN_CURRENT_A
    voltage: float = DEFAULT_VOLTAGE
    #: DC chargers are limited in W; their grid current is balanced over the three phases.
    dc: bool = False
    max_power_w: float | None = None

    def __post_init__(self) -> None:
        if not self.phases or len(set(self.phases)) != len(self.phases) or any(p not in (0, 1, 2) for p in self.phases):
            raise TopologyError(f"EVSE {self.key}: phases must be distinct site phases, got {self.phases}")
        if self.dc and len(self.phases) != 3:
            raise TopologyError(f"EVSE {self.key}: a DC charger draws on three phases")
        if not (0 < self.min_current_a <= self.max_current_a):
            raise TopologyError(f"EVSE {self.key}: need 0 < min_current_a <= max_current_a")
        if self.fallback_current_a < 0 or self.voltage <= 0:
            raise TopologyError(f"EVSE {self.key}: fallback must be >= 0 and voltage > 0")

    @property
    def key(self) -> EvseKey:
        return (self.station_id, self.evse_id)

    def rating_a(self, phases_in_use: int | None = None) -> float:
        """Per-phase current rating, including the power rating when there is one."""
        n = self.phases_used(phases_in_use)
        cap = self.max_current_a
        if self.max_power_w is not None:
            cap = min(cap, self.max_power_w / (self.voltage * n))
        return cap

    def phases_used(self, phases_in_use: int | None = None) -> int:
        if self.dc or phases_in_use is None:
            return len(self.phases)
        return max(1, min(len(self.phases), phases_in_use))

    def power_w(self, current_a: float, phases_in_use: int | None = None) -> float:
        return current_a * self.voltage * self.phases_used(phases_in_use)


@dataclass(frozen=True)
class Node:
    """A grid connection, panel or feeder. ``phase_limits_a`` per phase and/or ``limit_kw`` in total; the
    safety margin is kept free on every limit (``safety_margin_kw`` spread over three phases)."""

    id: str
    phase_limits_a: tuple[float, float, float] | None = None
    limit_kw: float | None = None
    voltage: float = DEFAULT_VOLTAGE
    safety_margin_a: float = 0.0
    safety_margin_kw: float = 0.0
    children: tuple[Node, ...] = ()
    evses: tuple[Evse, ...] = ()

    def __post_init__(self) -> None:
        if self.phase_limits_a is not None and (
            len(self.phase_limits_a) != 3 or any(x < 0 for x in self.phase_limits_a)
        ):
            raise TopologyError(f"node {self.id!r}: phase_limits_a must be three non-negative currents")
        if self.limit_kw is not None and self.limit_kw < 0:
            raise TopologyError(f"node {self.id!r}: limit_kw must be >= 0")
        if self.safety_margin_a < 0 or self.safety_margin_kw < 0:
            raise TopologyError(f"node {self.id!r}: safety margins must be >= 0")

    @property
    def margin_a(self) -> float:
        """Per-phase current kept free."""
        return self.safety_margin_a + self.safety_margin_kw * 1000.0 / (3 * self.voltage)

    def walk(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass(frozen=True)
class Site:
    """A site: its tree (``root`` is the grid connection, where the building meter sits)."""

    id: str
    root: Node
    #: Token groups in priority order (the ``priority`` strategy); unknown groups come last.
    priority_groups: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        ids = [n.id for n in self.root.walk()]
        if len(ids) != len(set(ids)):
            raise TopologyError(f"site {self.id!r}: node ids must be unique")
        keys = [e.key for e in self.evses]
        if len(keys) != len(set(keys)):
            raise TopologyError(f"site {self.id!r}: an EVSE appears twice in the tree")

    @functools.cached_property
    def nodes(self) -> tuple[Node, ...]:
        return tuple(self.root.walk())

    @functools.cached_property
    def evses(self) -> tuple[Evse, ...]:
        return tuple(e for n in self.root.walk() for e in n.evses)

    @functools.cached_property
    def index(self) -> dict[EvseKey, int]:
        return {e.key: j for j, e in enumerate(self.evses)}

    @functools.cached_property
    def compiled(self) -> CompiledTree:
        return CompiledTree.build(self)

    def evse(self, key: EvseKey) -> Evse:
        return self.evses[self.index[key]]

    @functools.cached_property
    def _terms(self) -> dict[tuple[int, int | None], tuple[np.ndarray, float, float]]:
        return {}

    def evse_terms(self, j: int, phases_in_use: int | None) -> tuple[np.ndarray, float, float]:
        """EVSE ``j``'s :func:`phase_use` (read-only), W per A of limit and per-phase rating with ``phases_in_use``:
        kept per site (it is frozen), as every plan asks them for every session."""
        terms = self._terms.get((j, phases_in_use))
        if terms is None:
            e = self.evses[j]
            use = phase_use(e, phases_in_use)
            use.flags.writeable = False
            terms = self._terms[j, phases_in_use] = (use, e.power_w(1.0, phases_in_use), e.rating_a(phases_in_use))
        return terms

    @property
    def grid_limit_kw(self) -> float | None:
        """The limit at the grid connection [kW]: its own, or its phase limits at its voltage (None: none)."""
        root = self.root
        if root.limit_kw is not None:
            return root.limit_kw
        return None if root.phase_limits_a is None else sum(root.phase_limits_a) * root.voltage / 1000


@dataclass(frozen=True)
class CompiledTree:
    """The tree as matrices: ``member[n, j]`` is True when EVSE ``j`` is below node ``n``."""

    member: np.ndarray  # (nodes, evses) bool
    node_ids: tuple[str, ...]
    phase_limit_a: np.ndarray  # (nodes, 3), +inf where the node has no per-phase limit
    limit_w: np.ndarray  # (nodes,), +inf where none
    margin_a: np.ndarray  # (nodes,)
    margin_w: np.ndarray  # (nodes,)
    wiring: np.ndarray = field(repr=False)  # (evses, 3, 3): wiring[j, k, p] = 1 when EVSE phase k is site phase p
    voltage: np.ndarray = field(repr=False)  # (evses,)

    @classmethod
    def build(cls, site: Site) -> CompiledTree:
        nodes, evses = site.nodes, site.evses
        index = site.index
        member = np.zeros((len(nodes), len(evses)), dtype=bool)

        def mark(node: Node) -> list[int]:
            below = [index[e.key] for e in node.evses]
            for child in node.children:
                below.extend(mark(child))
            member[nodes.index(node), below] = True
            return below

        mark(site.root)
        wiring = np.zeros((len(evses), 3, 3))
        for j, e in enumerate(evses):
            for k, p in enumerate(e.phases):
                wiring[j, k, p] = 1.0
        inf = float("inf")
        return cls(
            member=member,
            node_ids=tuple(n.id for n in nodes),
            phase_limit_a=np.array([n.phase_limits_a or (inf, inf, inf) for n in nodes], dtype=float).reshape(-1, 3),
            limit_w=np.array([inf if n.limit_kw is None else n.limit_kw * 1000.0 for n in nodes], dtype=float),
            margin_a=np.array([n.margin_a for n in nodes], dtype=float),
            margin_w=np.array([n.safety_margin_kw * 1000.0 + 3 * n.voltage * n.safety_margin_a for n in nodes]),
            wiring=wiring,
            voltage=np.array([e.voltage for e in evses], dtype=float),
        )


def phase_use(evse: Evse, phases_in_use: int | None) -> np.ndarray:
    """A length-3 vector: 1.0 on each site phase a current limit of 1 A adds 1 A to."""
    out = np.zeros(3)
    n = evse.phases_used(phases_in_use)
    for p in evse.phases[:n]:
        out[p] = 1.0
    return out


def phase_loads_a(
    site: Site, currents_a: dict[EvseKey, float], phases_in_use: dict[EvseKey, int | None]
) -> dict[str, tuple[float, float, float]]:
    """Per-node, per-phase EV current for per-EVSE current limits (phases from the EVSEs' wiring)."""
    tree = site.compiled
    per_evse = np.zeros((len(site.evses), 3))
    for key, amps in currents_a.items():
        j = site.index[key]
        per_evse[j] = amps * phase_use(site.evses[j], phases_in_use.get(key))
    loads = tree.member.astype(float) @ per_evse
    return {nid: (float(r[0]), float(r[1]), float(r[2])) for nid, r in zip(tree.node_ids, loads, strict=True)}
