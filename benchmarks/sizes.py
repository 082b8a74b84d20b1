"""How big each workload of the harness is: the full run, ``--quick`` and ``--smoke``.

Pure data. The full sizes are issue 10's; ``quick`` keeps every workload's shape at a size
that finishes in under 3 minutes on a 2-core machine with every peer installed; ``smoke`` is
for the test suite (seconds, figures meaningless).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True, kw_only=True)
class Sizes:
    """- ``w1_tasks``: no-op tasks per W1 round (submitted one call at a time, then awaited).
    - ``w2_rounds``: sequential round trips per W2 round; ``w2_idle``: seconds of quiet
      before one more round trip (the "after an idle second" case).
    - ``repeats``: rounds of W1 and W2; the median round is reported.
    - ``warmup``: no-op tasks run before W1 and W2 are timed.
    - ``w3_tasks`` / ``w3_seconds``: CPU-bound tasks and the serial time each should take.
    - ``w3_repeats``: rounds of W3 (best serial and best wall: noise only adds time).
    - ``w4_tasks`` / ``w4_sleep``: sleeping tasks and the seconds each sleeps.
    - ``w5_seconds`` / ``w5_wave``: how long the mixed orchestrator sends waves, tokens a wave.
    - ``w6_tasks``: submissions of the flood; ``w6_submit``: seconds the submitting may take
      (a slower system is reported with what it submitted by then); ``w6_drain``: seconds a
      system may take to finish them after the last submission (then the rest is abandoned
      and reported).
    - ``echo_rounds``: round trips per yardstick round (``repeats`` rounds).
    - ``system_timeout``: seconds one system may take for all its workloads.
    """

    w1_tasks: int
    w2_rounds: int
    w2_idle: float
    repeats: int
    warmup: int
    w3_tasks: int
    w3_seconds: float
    w3_repeats: int
    w4_tasks: int
    w4_sleep: float
    w5_seconds: float
    w5_wave: int
    w6_tasks: int
    w6_submit: float
    w6_drain: float
    echo_rounds: int
    system_timeout: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


FULL = Sizes(w1_tasks=5_000, w2_rounds=300, w2_idle=1.0, repeats=3, warmup=500,
             w3_tasks=8, w3_seconds=0.25, w3_repeats=3, w4_tasks=200, w4_sleep=0.05,
             w5_seconds=10.0, w5_wave=22, w6_tasks=100_000, w6_submit=60.0,
             w6_drain=30.0, echo_rounds=300,
             system_timeout=420.0)
QUICK = Sizes(w1_tasks=600, w2_rounds=100, w2_idle=1.0, repeats=3, warmup=50,
              w3_tasks=8, w3_seconds=0.08, w3_repeats=1, w4_tasks=100, w4_sleep=0.05,
              w5_seconds=1.5, w5_wave=22, w6_tasks=3_000, w6_submit=10.0,
              w6_drain=6.0, echo_rounds=100,
              system_timeout=120.0)
SMOKE = Sizes(w1_tasks=40, w2_rounds=10, w2_idle=0.01, repeats=1, warmup=5,
              w3_tasks=4, w3_seconds=0.005, w3_repeats=1, w4_tasks=8, w4_sleep=0.01,
              w5_seconds=0.2, w5_wave=11, w6_tasks=200, w6_submit=10.0,
              w6_drain=10.0, echo_rounds=10,
              system_timeout=60.0)

PRESETS = {"full": FULL, "quick": QUICK, "smoke": SMOKE}


def from_dict(values: dict[str, float]) -> Sizes:
    return Sizes(**values)  # type: ignore[arg-type]
