"""The auto-tune search: which candidates to try, in what order, and which one wins. Pure logic: a
``measure`` callback runs the trials, so the rules can be tested without processes.

Micro-batch: powers of two up (among the divisors of the effective batch, so that the accumulation
reproduces it exactly), stopping when a size is no faster by ``min_gain``; when a size fails (memory,
out of memory, a crash), bisection between the last size that fit and the first that failed. Then, on
CPU, the thread count: from all cores down, stopping when fewer threads are no faster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from trm_core.rundir.records import AutotuneTrial


@dataclass(frozen=True)
class Candidate:
    batch_size: int   # the effective batch (changes only with allow_batch_change)
    micro_batch: int
    threads: int      # torch CPU threads; 0 = torch's default

    def label(self) -> str:
        return f"batch {self.batch_size} micro {self.micro_batch} threads {self.threads or 'default'}"


@dataclass
class Trial:
    candidate: Candidate
    accepted: bool
    samples_per_s: float | None = None
    peak_mb: float | None = None
    reason: str = ""          # why it was rejected
    seconds: float = 0.0      # the trial's wall time, process start included

    def to_event(self) -> AutotuneTrial:
        return AutotuneTrial(batch_size=self.candidate.batch_size, micro_batch_size=self.candidate.micro_batch,
                             threads=self.candidate.threads, accepted=self.accepted,
                             samples_per_s=None if self.samples_per_s is None else round(self.samples_per_s, 3),
                             peak_mb=None if self.peak_mb is None else round(self.peak_mb, 1), reason=self.reason,
                             seconds=round(self.seconds, 2))


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def thread_counts(cores: int) -> list[int]:
    """Powers of two up to the core count, and the core count itself; most first."""
    counts = {cores}
    t = 1
    while t < cores:
        counts.add(t)
        t *= 2
    return sorted(counts, reverse=True)


@dataclass
class SearchSpace:
    batch_size: int
    start: Candidate            # the run's current settings: measured first, the "before"
    cores: int                  # > 0 on CPU: tune threads too; 0 on CUDA
    max_batch_size: int = 0     # > batch_size when the effective batch may grow
    min_gain: float = 0.03
    tune_micro: bool = True     # False: the user pinned train.micro_batch_size; only threads are tried


class Search:
    def __init__(self, space: SearchSpace, measure: Callable[[Candidate], Trial],
                 out_of_time: Callable[[], bool]) -> None:
        self.space, self._measure, self.out_of_time = space, measure, out_of_time
        self.trials: list[Trial] = []
        self._seen: dict[Candidate, Trial] = {}

    def measure(self, cand: Candidate) -> Trial | None:
        """The trial of ``cand`` (measured once); None when the time budget is spent."""
        if cand in self._seen:
            return self._seen[cand]
        if self.out_of_time():
            return None
        trial = self._measure(cand)
        self._seen[cand] = self._seen[trial.candidate] = trial  # threads 0 comes back as the real count
        self.trials.append(trial)
        return trial

    def better(self, trial: Trial | None, than: Trial | None) -> bool:
        if trial is None or not trial.accepted:
            return False
        if than is None or not than.accepted:
            return True
        return trial.samples_per_s > than.samples_per_s * (1 + self.space.min_gain)

    def run(self) -> list[Trial]:
        sp = self.space
        baseline = self.measure(sp.start)
        threads = baseline.candidate.threads if baseline else sp.start.threads
        if sp.tune_micro:
            self._micro_batches(threads)
        best = self.fastest()
        if sp.cores and best is not None:
            self._threads(best)
        return self.trials

    def fastest(self) -> Trial | None:
        accepted = [t for t in self.trials if t.accepted]
        return max(accepted, key=lambda t: t.samples_per_s) if accepted else None

    def _micro_batches(self, threads: int) -> None:
        """Up in powers of two while it pays: one size that is no faster may be noise, two in a row is not."""
        sp = self.space
        sizes = [(sp.batch_size, m) for m in divisors(sp.batch_size)]
        b = sp.batch_size * 2
        while sp.max_batch_size and b <= sp.max_batch_size:  # a larger effective batch, no accumulation
            sizes.append((b, b))
            b *= 2
        best: Trial | None = None
        fit, i, flat = -1, 0, 0
        while i < len(sizes):
            batch, micro = sizes[i]
            trial = self.measure(Candidate(batch, micro, threads))
            if trial is None:
                return
            if not trial.accepted:
                self._bisect(sizes, fit, i, threads)
                return
            fit = i
            if self.better(trial, best):
                best, flat = trial, 0
            else:
                flat += 1
                if flat == 2:
                    return
            i = next((j for j in range(i + 1, len(sizes)) if sizes[j][1] >= 2 * micro), len(sizes))

    def _bisect(self, sizes: list[tuple[int, int]], fit: int, failed: int, threads: int) -> None:
        """Between the last size that fit and the first that failed."""
        while failed - fit > 1:
            mid = (fit + failed) // 2
            batch, micro = sizes[mid]
            trial = self.measure(Candidate(batch, micro, threads))
            if trial is None:
                break
            if trial.accepted:
                fit = mid
            else:
                failed = mid

    def _threads(self, best: Trial) -> None:
        cand = best.candidate
        for n in thread_counts(self.space.cores):
            if n == cand.threads:
                continue
            trial = self.measure(Candidate(cand.batch_size, cand.micro_batch, n))
            if trial is None:
                break
            if self.better(trial, best):
                best = trial
            elif trial.accepted and n < cand.threads:
                break  # fewer threads and no faster: fewer still will not be


def choose(trials: list[Trial], baseline: Trial | None, min_gain: float) -> Trial | None:
    """The fastest accepted trial; the baseline when nothing beats it by ``min_gain`` (noise is not a reason
    to change a run's settings)."""
    accepted = [t for t in trials if t.accepted]
    if not accepted:
        return None
    fastest = max(accepted, key=lambda t: t.samples_per_s)
    if baseline is not None and baseline.accepted and fastest.samples_per_s <= baseline.samples_per_s * (1 + min_gain):
        return baseline
    return fastest
