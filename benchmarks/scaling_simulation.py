"""A day of a 100-endpoint fleet in simulation: the pure scaling decider on a fake clock over synthetic traffic
(diurnal, bursty, spiky; seeded), against SageMaker's default target tracking on the same traffic.

    .venv/bin/python benchmarks/scaling_simulation.py [--endpoints 100] [--hours 24] [--seed 7]

The model, per endpoint and 10 s tick: Poisson arrivals at the pattern's rate; instances that serve
`per_instance_rps` each once `cold_start_s` after they are started; a FIFO queue of at most `queue_limit`
requests per variant (beyond it: throttled). The metric is InvocationsPerInstance (requests / max(1, instances
in service)), one data point per 10 s period with requests (none without, as CloudWatch), summed to 1-minute
points for SageMaker. Both scalers track the same target (70 % of an instance's capacity, per minute) with the
same instance model; SageMaker's metric delay and its minutes-long instance provisioning are left out, which
favours SageMaker. Deterministic for a seed.
"""

from __future__ import annotations

import argparse
import math
import time
from collections import deque
from dataclasses import dataclass, field, replace

import numpy as np

from modelhost.autoscaling.decider import (
    Capacity,
    Decision,
    History,
    MetricSeries,
    Traffic,
    decide_scale_to_zero,
    decide_target_tracking,
)
from modelhost.autoscaling.policies import MODELHOST_DEFAULTS, SAGEMAKER_SETTINGS, ScalingSettings, TargetTrackingPolicy

DAY_S = 86_400.0
PATTERNS = ("diurnal", "bursty", "spiky")


@dataclass(frozen=True, slots=True)
class Fleet:
    endpoints: int = 100
    hours: float = 24.0
    seed: int = 7
    tick_s: float = 10.0
    cold_start_s: float = 60.0  # start -> serving (the model load; SageMaker's provisioning takes minutes more)
    per_instance_rps: float = 2.0  # requests an instance answers per second
    queue_limit: int = 256  # requests waiting per variant, more are throttled (MODELHOST_MAX_QUEUE_PER_VARIANT)
    max_instances: int = 10  # the scalable target's MaxCapacity
    # ask target tracking only when it can act: the newest point above the target (AlarmHigh needs it) or more
    # instances than its floor (a scale-in needs them); the idle rule only while idle: the same decisions, faster
    shortcut: bool = True

    @property
    def ticks(self) -> int:
        return int(self.hours * 3600.0 / self.tick_s)

    @property
    def target_per_minute(self) -> float:
        return 0.7 * self.per_instance_rps * 60.0


@dataclass(frozen=True, slots=True)
class Scaler:
    name: str
    settings: ScalingSettings
    min_capacity: int


SCALERS = (
    Scaler("modelhost (scale to zero)", MODELHOST_DEFAULTS, 0),
    Scaler("modelhost (MinCapacity 1)", MODELHOST_DEFAULTS, 1),
    Scaler("SageMaker default", SAGEMAKER_SETTINGS, 1),
)


@dataclass(slots=True)
class Totals:
    instance_s: float = 0.0
    requests: int = 0
    cold_waits: int = 0  # arrived while no instance served (waited for a cold start)
    throttled: int = 0
    delayed: int = 0  # not answered within the 10 s tick they arrived in

    def add(self, other: Totals) -> None:
        self.instance_s += other.instance_s
        self.requests += other.requests
        self.cold_waits += other.cold_waits
        self.throttled += other.throttled
        self.delayed += other.delayed


# ---------------------------------------------------------------- traffic


def rates(pattern: str, rng: np.random.Generator, fleet: Fleet) -> np.ndarray:
    """Requests per second for each tick of one endpoint."""
    t = np.arange(fleet.ticks) * fleet.tick_s
    if pattern == "diurnal":
        peak = rng.uniform(1.0, 9.0)
        phase = rng.uniform(0.0, 2 * math.pi)
        wave = 0.55 + 0.45 * np.sin(2 * math.pi * t / DAY_S + phase)
        return np.asarray(peak * wave * rng.lognormal(0.0, 0.1, fleet.ticks))
    if pattern == "bursty":
        base = np.full(fleet.ticks, rng.uniform(0.05, 0.5))
        return _add_episodes(base, rng, fleet, per_day=8.0, minutes=(5.0, 30.0), rate=(2.0, 9.0))
    trickle = rng.choice((0.0, 0.002))  # half of them see a stray request every ~8 minutes
    base = np.full(fleet.ticks, trickle)
    return _add_episodes(base, rng, fleet, per_day=4.0, minutes=(1.0, 5.0), rate=(1.0, 8.0))


def _add_episodes(base: np.ndarray, rng: np.random.Generator, fleet: Fleet, per_day: float,
                  minutes: tuple[float, float], rate: tuple[float, float]) -> np.ndarray:  # fmt: skip
    out = base.copy()
    count = rng.poisson(per_day * fleet.hours / 24.0)
    for _ in range(count):
        start = int(rng.integers(0, fleet.ticks))
        length = int(rng.uniform(*minutes) * 60.0 / fleet.tick_s)
        out[start : start + length] = np.maximum(out[start : start + length], rng.uniform(*rate))
    return out


def workload(fleet: Fleet) -> list[tuple[str, list[int]]]:
    """(pattern, arrivals per tick) for every endpoint: 40 % diurnal, 30 % bursty, 30 % spiky."""
    rng = np.random.default_rng(fleet.seed)
    out = []
    for i in range(fleet.endpoints):
        share = i / fleet.endpoints
        pattern = "diurnal" if share < 0.4 else "bursty" if share < 0.7 else "spiky"
        out.append((pattern, rng.poisson(rates(pattern, rng, fleet) * fleet.tick_s).tolist()))
    return out


# ---------------------------------------------------------------- one endpoint


@dataclass(slots=True)
class Variant:
    ready_at: list[float]  # per instance, when it serves (sorted: newest last)
    history: History = field(default_factory=History)
    backlog: int = 0
    idle_since_s: float | None = 0.0
    samples: deque[tuple[float, float]] = field(default_factory=deque)
    minute: float = 0.0  # InvocationsPerInstance summed over the current period (SageMaker's: 1 minute)
    newest: float = 0.0  # the newest period's value in the target's terms (per minute)

    def in_service(self, now_s: float) -> int:
        return sum(1 for at in self.ready_at if at <= now_s)

    def resize(self, desired: int, now_s: float, fleet: Fleet) -> None:
        current = len(self.ready_at)
        if desired > current:
            self.ready_at += [now_s + fleet.cold_start_s] * (desired - current)
            self.history = replace(self.history, last_scale_out_s=now_s, scaled_out_from=current)
        elif desired < current:
            del self.ready_at[desired:]  # the newest (still starting) go first
            self.history = replace(self.history, last_scale_in_s=now_s)


def simulate_endpoint(arrivals: list[int], scaler: Scaler, fleet: Fleet) -> Totals:
    """One endpoint's day under one scaler."""
    settings = scaler.settings
    policy = TargetTrackingPolicy("P", fleet.target_per_minute, "AlarmHigh", "AlarmLow")
    keep = max(settings.scale_in_points, settings.scale_out_points)
    every = max(1, round(settings.resolution_s / fleet.tick_s))
    variant, totals, tick = Variant([0.0]), Totals(), fleet.tick_s
    for k, count in enumerate(arrivals):
        now = k * tick
        if count and not variant.ready_at:  # the router tells the decider at once; the first arrival starts it
            _wake(variant, settings, scaler, fleet, now + tick / (count + 1))
        serving = variant.in_service(now)
        end = now + tick
        _serve(variant, count, serving, fleet, totals, end)
        totals.instance_s += len(variant.ready_at) * tick
        variant.minute += count / max(1, serving)
        if (k + 1) % every == 0:
            if variant.minute > 0:  # no data point for a period without requests
                variant.samples.append((end - settings.resolution_s, variant.minute))
                if len(variant.samples) > keep:
                    variant.samples.popleft()
            variant.newest = variant.minute * 60.0 / settings.resolution_s
            variant.minute = 0.0
            _decide(variant, policy, scaler, fleet, end)
    return totals


def _serve(variant: Variant, count: int, serving: int, fleet: Fleet, totals: Totals, end_s: float) -> None:
    capacity = int(serving * fleet.per_instance_rps * fleet.tick_s)
    old = variant.backlog
    served_old = min(old, capacity)
    served_new = min(count, capacity - served_old)
    waiting_new = count - served_new
    room = max(0, fleet.queue_limit - (old - served_old))
    throttled = max(0, waiting_new - room)
    variant.backlog = old - served_old + waiting_new - throttled
    totals.requests += count
    totals.throttled += throttled
    totals.delayed += waiting_new - throttled
    if serving == 0:
        totals.cold_waits += count - throttled
    if count or variant.backlog:
        variant.idle_since_s = None
    elif variant.idle_since_s is None:
        variant.idle_since_s = end_s  # the last request was answered within this tick


def _wake(variant: Variant, settings: ScalingSettings, scaler: Scaler, fleet: Fleet, now_s: float) -> None:
    capacity = Capacity(0, 0, scaler.min_capacity, fleet.max_instances)
    decision = decide_scale_to_zero(settings, capacity, Traffic(None, request_waiting=True), now_s)
    if decision.desired is not None:
        variant.resize(decision.desired, now_s, fleet)


def _decide(variant: Variant, policy: TargetTrackingPolicy, scaler: Scaler, fleet: Fleet, now_s: float) -> None:
    desired = len(variant.ready_at)
    capacity = Capacity(desired, variant.in_service(now_s), scaler.min_capacity, fleet.max_instances)
    traffic = Traffic(variant.idle_since_s, request_waiting=variant.backlog > 0)
    decision = Decision(None, "")
    if not (fleet.shortcut and variant.idle_since_s is None):  # the idle rule acts only on an idle variant
        decision = decide_scale_to_zero(scaler.settings, capacity, traffic, now_s)
    nothing_to_do = variant.newest <= policy.target_value and desired <= max(1, scaler.min_capacity)
    if decision.desired is None and not (fleet.shortcut and nothing_to_do):
        series = MetricSeries(tuple(variant.samples), now_s)
        decision = decide_target_tracking(policy, scaler.settings, capacity, variant.history, series, now_s)
    if decision.desired is not None:
        variant.resize(decision.desired, now_s, fleet)


# ---------------------------------------------------------------- the fleet


def simulate(fleet: Fleet, scalers: tuple[Scaler, ...] = SCALERS) -> dict[str, dict[str, Totals]]:
    """scaler name -> pattern ("all" too) -> totals."""
    loads = workload(fleet)
    out: dict[str, dict[str, Totals]] = {}
    for scaler in scalers:
        by_pattern = {name: Totals() for name in ("all", *PATTERNS)}
        for pattern, arrivals in loads:
            totals = simulate_endpoint(arrivals, scaler, fleet)
            by_pattern[pattern].add(totals)
            by_pattern["all"].add(totals)
        out[scaler.name] = by_pattern
    return out


def table(results: dict[str, dict[str, Totals]], fleet: Fleet) -> str:
    def pct(part: int, whole: int) -> str:
        return f"{100.0 * part / whole:.2f} %" if whole else "-"

    lines = [
        "| scaler | traffic | instance-hours | waited for a cold start | throttled | answered after > 10 s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, by_pattern in results.items():
        for pattern, t in by_pattern.items():
            lines.append(f"| {name} | {pattern} | {t.instance_s / 3600.0:,.0f} | {pct(t.cold_waits, t.requests)} "
                         f"| {pct(t.throttled, t.requests)} | {pct(t.delayed, t.requests)} |")  # fmt: skip
    fixed = fleet.endpoints * fleet.max_instances * fleet.hours
    lines.append(f"\n{fleet.endpoints} endpoints, {fleet.hours:g} h, seed {fleet.seed}; a fixed fleet at MaxCapacity "
                 f"({fleet.max_instances} each) is {fixed:,.0f} instance-hours.")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    defaults = Fleet()
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=defaults.endpoints)
    parser.add_argument("--hours", type=float, default=defaults.hours)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    args = parser.parse_args()
    fleet = Fleet(endpoints=args.endpoints, hours=args.hours, seed=args.seed)
    started = time.perf_counter()
    results = simulate(fleet)
    print(table(results, fleet))
    print(f"simulated in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
