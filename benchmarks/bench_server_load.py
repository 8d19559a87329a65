"""What the plugin costs a shared team server: server CPU per run, requests per run, runs/s.

The deployment is the one the team tests start: PostgreSQL backend store, moto S3
artifact destination, `mlflow server` in front (artifacts proxied). Two pools of
--processes client processes are started, one with the plugin and one with
MLREPRO_DISABLE=1. Each process imports mlflow, sets its seed, tracks one data shard
(--inputs) and waits. A round releases one pool: each of its processes makes --runs
runs, each a realistic short run (one params batch, --steps metric steps logged one
request each, as autolog does), waits for its uploads (`mlflow_repro_plugin.flush`)
and reports done. Rounds alternate disabled-plugin-plugin-disabled on the same server.
On a team the clients run elsewhere; on a small machine they compete with the server
for the same cores, so three figures are kept apart:

1. server cost per run: CPU seconds used by the tracking server's processes (every
   worker, children included) and by the object store, read from /proc before and
   after each round, divided by the runs of that round (PostgreSQL shown apart);
   plugin / disabled, target <= 1.05;
2. requests per run by endpoint, from the server's access log; target: at most +1
   per exploratory run without inputs, +2 with inputs (+1 more on a dirty tree);
3. runs/s (runs of the round / its clock), plugin / disabled, with the server side
   (tracking server, object store, database) pinned to one core and the clients to
   the others (os.sched_setaffinity); target >= 0.95. The unpinned ratio is printed
   for information.

Why pools and short rounds: on a shared virtual machine the CPU time one request costs
drifts by 10-25% over minutes (neighbours, the server's growing database and heap),
more than the few percent measured. Processes that stay up make a round a few seconds
long, so many rounds fit, and each plugin round is compared with the disabled rounds
just before and after it: with the figure expected at its place in the sequence (the
line through them), so that a drift cancels. The figure is the median of those
per-round ratios, printed with their range. The plain ratio of the two modes' medians
is printed too, for information, and so is the noise floor: how far two back-to-back
rounds of the same mode differ. --control adds a third pool that runs without the
plugin but makes the plugin's two requests itself (log-inputs, a manifest-sized PUT):
what those requests cost the server, apart from anything our code does.

The clock of a round starts when its pool is released and stops when the last process
reports done: inside it are `start_run` (the tags), the runs' requests and the
uploads. A warm-up round per pool, not counted, lets the plugin's import-time
capture finish first; what a process pays before its first run (interpreter start,
`import mlflow` with the plugin's capture starting, seeding, fingerprinting the
shard) is printed apart as the pool's start time.

Run time on 2 cores: about a minute to start a variant's pools, then 10-15 s a round
(its clock, a new experiment, the check that every run arrived); the defaults
(2 variants, 20 rounds per mode, 16 x 1 run of 50 steps) take about 20 minutes,
`--variants pinned` (the target figures) about 10, --control adds half.

    .venv/bin/python benchmarks/bench_server_load.py [--processes 16] [--runs 1] [--steps 50]
        [--params 8] [--inputs 1] [--rounds 20] [--variants pinned,unpinned] [--control]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.git import make_repo  # noqa: E402
from support.mlflow_server import mlflow_server, requests_logged  # noqa: E402
from support.postgres import missing_reason, postgres_cluster  # noqa: E402
from support.procs import clean_env  # noqa: E402
from support.s3 import moto_s3  # noqa: E402

WORKER = """\
import os
import sys

import mlflow
import mlflow_repro_plugin
import repro_common

worker, steps, params, inputs = (int(a) for a in sys.argv[1:5])
repro_common.seed_everything(1000 + worker)
for number in range(inputs):
    shard = f"shard-{worker}-{number}.bin"
    with open(shard, "wb") as handle:
        handle.write(f"rows of worker {worker}, shard {number}\\n".encode() * 512)
    repro_common.track_data(shard, name=f"shard{number}")
print("ready", flush=True)
same_requests = os.environ.get("BENCH_SAME_REQUESTS") == "1"
if same_requests:  # the control: no plugin, this script makes the plugin's two requests
    from mlflow.entities import Dataset, DatasetInput
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    # One folder per process: the pool's processes start together, and a file they all
    # rewrote could be read half-written by another's upload.
    manifest = os.path.join(f"control-{worker}", "manifest.json")
    os.makedirs(os.path.dirname(manifest), exist_ok=True)
    with open(manifest, "w") as handle:
        handle.write('{"padding": "' + "x" * 29000 + '"}')
    client = mlflow.MlflowClient()
    shard0 = Dataset(
        name="shard0", digest=f"{worker:036d}", source_type="local",
        source='{"uri": "shard"}', profile='{"fingerprint": "blake3:0"}',
    )
for line in sys.stdin:  # one round: "<experiment id> <runs>"
    experiment_id, runs = line.split()
    for index in range(int(runs)):
        with mlflow.start_run(experiment_id=experiment_id) as run:
            mlflow.log_params({f"p{k}": k * 0.1 for k in range(params)} | {"worker": worker})
            for step in range(steps):
                mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        if same_requests:
            if inputs:
                client.log_inputs(run.info.run_id, datasets=[DatasetInput(shard0, tags=[])])
            get_artifact_repository(run.info.artifact_uri).log_artifact(manifest, "repro")
    if not mlflow_repro_plugin.flush(120):  # this round's uploads belong to its clock
        sys.exit("uploads still pending after 120 s")
    print("done", flush=True)
"""

MODES = ("plugin", "disabled")
# --control adds a third pool: MLREPRO_DISABLE=1, and the script itself makes the plugin's two
# requests (log-inputs, the manifest's PUT): what those requests cost, without our code.
CONTROL = "same-requests"
# name: server side and clients on separate cores
VARIANTS = {"pinned": True, "unpinned": False}
# The figure this benchmark gave before exploratory runs became one request, for reference.
BEFORE = "0.72 runs/s ratio, unpinned, loaded machine, 2 params + 10 steps (+4 plugin requests)"
TICK = os.sysconf("SC_CLK_TCK")

# --- /proc: CPU time of process trees, and pinning them ---------------------------------


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds of the process and of its reaped children)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    # After the command name: state ppid ... utime(12) stime(13) cutime(14) cstime(15).
    return int(fields[1]), sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICK


def _processes() -> dict[int, tuple[int, float]]:
    found = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = _stat(int(name))
            if stat is not None:
                found[int(name)] = stat
    return found


def _tree(roots: list[int], table: dict[int, tuple[int, float]]) -> list[int]:
    """`roots` and all their living descendants."""
    members, frontier = set(roots) & set(table), list(roots)
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _) in table.items():
            if ppid == parent and pid not in members:
                members.add(pid)
                frontier.append(pid)
    return sorted(members)


def tree_cpu(roots: list[int]) -> float:
    """CPU seconds of the trees under `roots`: every living process plus what it reaped."""
    table = _processes()
    return sum(table[pid][1] for pid in _tree(roots, table))


def find_roots(match: Callable[[list[str]], bool]) -> list[int]:
    """Processes whose argv satisfies `match`, without those whose parent matches too."""
    hits = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as handle:
                argv = [a.decode(errors="replace") for a in handle.read().split(b"\0") if a]
        except OSError:
            continue
        if argv and match(argv):
            hits.add(int(name))
    table = _processes()
    return sorted(pid for pid in hits if table.get(pid, (0, 0.0))[0] not in hits)


def _has(argv: list[str], *words: str) -> bool:
    return all(any(word == arg or arg.endswith("/" + word) for arg in argv) for word in words)


def pin(roots: list[int], cpus: set[int]) -> None:
    """Every thread of every process under `roots` onto `cpus` (new ones inherit it)."""
    for pid in _tree(roots, _processes()):
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            continue
        for tid in tids:
            try:
                os.sched_setaffinity(tid, cpus)
            except OSError:
                pass


# --- one round --------------------------------------------------------------------------


@dataclass
class Side:
    """The server side of the deployment: process-tree roots, and where they may run."""

    server: list[int]
    store: list[int]
    database: list[int]
    all_cpus: set[int]
    server_cpus: set[int] | None  # None: pinning is not possible here
    client_cpus: set[int] | None

    def cpu(self) -> dict[str, float]:
        return {
            "server": tree_cpu(self.server),
            "store": tree_cpu(self.store),
            "database": tree_cpu(self.database),
        }

    def place(self, pinned: bool) -> None:
        cpus = self.server_cpus if pinned and self.server_cpus else self.all_cpus
        pin(self.server + self.store + self.database, cpus)


class Pool:
    """--processes client processes of one mode, started once, released round by round."""

    def __init__(
        self, mode: str, repo: Path, env: dict[str, str], args: argparse.Namespace, cpus: set[int]
    ):
        self.logs = [repo / f"worker-{mode}-{w}.err" for w in range(args.processes)]
        self._errors = [log.open("w") for log in self.logs]
        launched = time.perf_counter()
        self.procs = [
            subprocess.Popen(
                [sys.executable, "worker.py", str(w), str(args.steps), str(args.params)]
                + [str(args.inputs)],
                cwd=repo,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
                preexec_fn=lambda: os.sched_setaffinity(0, cpus),
            )
            for w, errors in enumerate(self._errors)
        ]
        self._expect("ready")
        self.started = time.perf_counter() - launched  # launch -> every process ready

    def _expect(self, word: str) -> None:
        """Read each process's stdout up to `word` (MLflow prints its run links there too)."""
        for proc, log in zip(self.procs, self.logs, strict=True):
            assert proc.stdout is not None
            line = "?"
            while line and line.strip() != word:
                line = proc.stdout.readline()
            if not line:
                proc.kill()
                proc.wait()
                raise SystemExit(
                    f"a worker exited with {proc.returncode} before saying {word!r}:\n"
                    f"{log.read_text()[-3000:]}"
                )

    def release(self, experiment_id: str, runs: int) -> None:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(f"{experiment_id} {runs}\n")
            proc.stdin.flush()

    def wait(self) -> None:
        self._expect("done")

    def close(self) -> None:
        for proc in self.procs:
            if proc.stdin:
                proc.stdin.close()
        for proc in self.procs:
            proc.wait(timeout=60)
        for errors in self._errors:
            errors.close()


@dataclass
class Round:
    clock: float  # release -> last process done (uploads included)
    runs: int
    cpu: dict[str, float]  # CPU seconds used during the clock, by part of the server side
    requests: Counter[str] = field(default_factory=Counter)

    @property
    def cost(self) -> float:
        """Tracking server + object store CPU seconds per run (PostgreSQL is shown apart)."""
        return (self.cpu["server"] + self.cpu["store"]) / self.runs

    @property
    def rate(self) -> float:
        """Runs per second of the round's clock."""
        return self.runs / self.clock


def one_round(pool: Pool, experiment_id: str, side: Side, server_log: Path, runs: int) -> Round:
    _, offset = requests_logged(server_log)
    before = side.cpu()
    start = time.perf_counter()
    pool.release(experiment_id, runs)
    pool.wait()
    end = time.perf_counter()
    time.sleep(0.3)  # the server's last log lines
    after = side.cpu()
    served, _ = requests_logged(server_log, offset)
    return Round(
        clock=end - start,
        runs=runs * len(pool.procs),
        cpu={part: after[part] - before[part] for part in before},
        requests=served,
    )


def pools_for(
    repo: Path, url: str, side: Side, args: argparse.Namespace, pinned: bool, modes: list[str]
) -> dict[str, Pool]:
    """A pool per mode, the clients placed as the variant says."""
    side.place(pinned)
    cpus = side.client_cpus if pinned and side.client_cpus else side.all_cpus
    pools = {}
    for mode in modes:
        # Telemetry off in every mode: offline, MLflow's telemetry thread pops an environment
        # variable while other threads iterate os.environ (requests' proxy lookup), a race.
        env = clean_env(
            MLFLOW_TRACKING_URI=url,
            MLFLOW_DISABLE_TELEMETRY="true",
            **({"MLREPRO_DISABLE": "1"} if mode != "plugin" else {}),
            **({"BENCH_SAME_REQUESTS": "1"} if mode == CONTROL else {}),
        )
        pools[mode] = Pool(mode, repo, env, args, cpus)
    return pools


# --- the report -------------------------------------------------------------------------


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.3f}" if b else "n/a"


def drift_corrected_ratios(sequence: list[tuple[str, float]], mode: str = "plugin") -> list[float]:
    """`mode` / disabled, one ratio per `mode` round, from rounds in the order they ran.

    The server's cost per run drifts as a benchmark goes on (its database and heap grow),
    so a plugin round is compared with the disabled value expected at its place in the
    sequence: the straight line through the nearest disabled rounds before and after it
    (the one neighbour when it has only one). A linear drift then cancels, which a plain
    median over each mode's rounds does not: with 3 rounds one mode runs later on average.
    """
    disabled = [(i, v) for i, (name, v) in enumerate(sequence) if name == "disabled"]
    ratios = []
    for i, (name, value) in enumerate(sequence):
        if name != mode or not disabled:
            continue
        before = [(j, v) for j, v in disabled if j < i][-1:]
        after = [(j, v) for j, v in disabled if j > i][:1]
        if before and after:
            (ja, va), (jb, vb) = before[0], after[0]
            expected = va + (vb - va) * (i - ja) / (jb - ja)
        else:
            expected = (before or after)[0][1]
        if expected:
            ratios.append(value / expected)
    return ratios


def _neighbour_ratios(sequence: list[tuple[str, float]]) -> list[float]:
    """Back-to-back rounds of one mode (disabled-plugin-plugin-disabled has them): how far
    two measurements of the same thing differ here."""
    return [
        b / a
        for (mode_a, a), (mode_b, b) in zip(sequence, sequence[1:], strict=False)
        if mode_a == mode_b and a
    ]


def _spread(ratios: list[float]) -> str:
    """Median of the per-round ratios, and their range."""
    if not ratios:
        return "n/a"
    return (
        f"{statistics.median(ratios):.3f}  (per round {min(ratios):.3f} .. "
        f"{max(ratios):.3f}, {len(ratios)} rounds)"
    )


def report(
    args: argparse.Namespace,
    history: list[tuple[str, str, Round]],
    started: dict[str, list[float]],
    side: Side,
) -> None:
    """`history`: (variant, mode, round) in the order the rounds ran."""
    rounds: dict[tuple[str, str], list[Round]] = {}
    for variant, mode, done in history:
        rounds.setdefault((variant, mode), []).append(done)
    variants = [v for v in args.variants if any((v, m) in rounds for m in MODES)]
    every = {m: [r for (v, mode), rs in rounds.items() if mode == m for r in rs] for m in MODES}

    def in_order(variant: str, value: Callable[[Round], float]) -> list[tuple[str, float]]:
        return [(m, value(r)) for v, m, r in history if v == variant]

    def pooled(
        ratios: Callable[[list[tuple[str, float]]], list[float]], value: Callable[[Round], float]
    ) -> list[float]:
        """`ratios` of each variant's rounds, in the order they ran, pooled over the variants."""
        return [ratio for variant in variants for ratio in ratios(in_order(variant, value))]

    print()
    print(
        f"workload: {args.processes} processes x {args.runs} run(s) a round; a run = 1 params "
        f"batch ({args.params + 1} params) + {args.steps} metric steps (one request each); "
        f"{args.inputs} tracked input(s) per process; {args.rounds} rounds per mode and variant"
    )
    if side.server_cpus:
        print(
            f"pinning: server side (tracking server, object store, PostgreSQL) on CPU "
            f"{sorted(side.server_cpus)}, clients on CPU {sorted(side.client_cpus or [])}"
        )
    else:
        print(f"pinning: NOT possible here (CPUs available: {sorted(side.all_cpus)}); all unpinned")

    print("\n1. server cost per run: CPU seconds used while the clock ran / runs of the round")
    print("   (median over all rounds of a mode; tracking server = all its workers and children)")
    cost = {}
    for mode in MODES:
        parts = {
            part: statistics.median(r.cpu[part] / r.runs for r in every[mode])
            for part in ("server", "store", "database")
        }
        cost[mode] = parts["server"] + parts["store"]
        print(
            f"   {mode:8s} tracking server {parts['server'] * 1000:7.2f} ms  object store "
            f"{parts['store'] * 1000:6.2f} ms  = {cost[mode] * 1000:7.2f} ms/run"
            f"   (PostgreSQL, apart: {parts['database'] * 1000:6.2f} ms/run)"
        )
    print(
        f"   ratio of those medians, plugin/disabled: {_ratio(cost['plugin'], cost['disabled'])}"
        "  (for information: a drift over the run biases it)"
    )
    cost_ratios = pooled(drift_corrected_ratios, lambda r: r.cost)
    print(
        f"   server + store cost ratio plugin/disabled, drift-corrected: {_spread(cost_ratios)}"
        "  (target <= 1.05)"
    )
    if args.control:
        control = pooled(lambda rounds: drift_corrected_ratios(rounds, CONTROL), lambda r: r.cost)
        served = [r for (v, mode), rs in rounds.items() if mode == CONTROL for r in rs]
        per_run = sum(sum(r.requests.values()) for r in served) / sum(r.runs for r in served)
        print(
            f"   control, no plugin, the script makes the plugin's requests itself "
            f"({per_run:.1f} requests/run):\n      {CONTROL}/disabled, drift-corrected: "
            f"{_spread(control)}"
        )
    noise = pooled(_neighbour_ratios, lambda r: r.cost)
    if noise:
        print(
            f"   noise floor: a round / the next round of the same mode (no change at all): "
            f"{min(noise):.3f} .. {max(noise):.3f}, median |1 - ratio| "
            f"{statistics.median(abs(1 - n) for n in noise):.3f} ({len(noise)} pairs)"
        )

    print("\n2. requests per run by endpoint (from the server's access log): plugin, disabled")
    kinds = {m: sum((r.requests for r in every[m]), Counter()) for m in MODES}
    runs = {m: sum(r.runs for r in every[m]) for m in MODES}
    for kind in sorted(set(kinds["plugin"]) | set(kinds["disabled"])):
        with_plugin = kinds["plugin"][kind] / runs["plugin"]
        without = kinds["disabled"][kind] / runs["disabled"]
        extra = f"  (+{with_plugin - without:.2f})" if abs(with_plugin - without) >= 0.005 else ""
        print(f"   {with_plugin:6.2f} {without:6.2f}  {kind}{extra}")
    total = {m: sum(kinds[m].values()) / runs[m] for m in MODES}
    target = 2 if args.inputs else 1
    print(
        f"   total  {total['plugin']:6.2f} {total['disabled']:6.2f}  "
        f"(+{total['plugin'] - total['disabled']:.2f} per run; target +{target} on a clean tree)"
    )

    print("\n3. runs/s = runs of a round / its clock, plugin vs disabled")
    print("   clock: from the pool's release to its last process done; it holds start_run, the")
    print("   runs' requests and the uploads (the processes wait for them before saying done).")
    for variant in variants:
        pinned = VARIANTS[variant] and bool(side.server_cpus)
        rate = {
            mode: statistics.median(r.rate for r in rounds.get((variant, mode), []))
            for mode in MODES
        }
        what = (
            "server side pinned apart from the clients (the target figure)"
            if VARIANTS[variant]
            else "nothing pinned (for information)"
        )
        note = "" if pinned or not VARIANTS[variant] else " [pinning not possible: unpinned]"
        print(f"   {variant}: {what}{note}")
        print(
            f"      plugin {rate['plugin']:6.2f} runs/s  disabled {rate['disabled']:6.2f} runs/s  "
            f"ratio of medians {_ratio(rate['plugin'], rate['disabled'])}"
        )
        rate_ratios = drift_corrected_ratios(in_order(variant, lambda r: r.rate))
        print(
            f"      ratio, drift-corrected: {_spread(rate_ratios)}"
            + ("  (target >= 0.95)" if variant == "pinned" else "")
        )
        if args.control:
            control = drift_corrected_ratios(in_order(variant, lambda r: r.rate), CONTROL)
            print(f"      control, {CONTROL}/disabled, drift-corrected: {_spread(control)}")
    print(
        "\n4. before the first run, outside every clock (interpreter start, import mlflow with the "
        "plugin's\n   capture starting, seeding, fingerprinting the shard), launch to every "
        "process ready, median of the pools:"
    )
    print(
        f"   plugin {statistics.median(started['plugin']):6.2f} s  disabled "
        f"{statistics.median(started['disabled']):6.2f} s  ratio "
        f"{_ratio(statistics.median(started['plugin']), statistics.median(started['disabled']))}"
        f"  ({args.processes} processes at once)"
    )
    print(f"\nreference, before exploratory runs became one request: {BEFORE}")


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The docstring as written (what each figure is), and every knob's default."""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=HelpFormatter,
        epilog="Needs PostgreSQL (/usr/lib/postgresql/*/bin) and moto; run it on a quiet machine.",
    )
    parser.add_argument("--processes", type=int, default=16, help="client processes at once")
    parser.add_argument("--runs", type=int, default=1, help="runs per process and round")
    parser.add_argument(
        "--steps", type=int, default=50, help="metric steps per run, one request each"
    )
    parser.add_argument("--params", type=int, default=8, help="params per run (one batch request)")
    parser.add_argument("--inputs", type=int, default=1, help="tracked data inputs per process")
    parser.add_argument(
        "--rounds",
        type=int,
        default=20,
        help="rounds per mode and variant; even, so that no plugin round ends the sequence",
    )
    parser.add_argument(
        "--control",
        action="store_true",
        help=f"add a third pool, {CONTROL!r}: no plugin, and the script itself makes the "
        "plugin's two requests (log-inputs, the manifest's PUT); it tells what those requests "
        "cost the server, apart from anything our code does",
    )
    parser.add_argument(
        "--variants",
        default="pinned,unpinned",
        help="comma-separated: pinned (server side on one core, clients on the others; the "
        "target figures), unpinned (for information)",
    )
    args = parser.parse_args()
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}: choose from {', '.join(VARIANTS)}")
    for knob in ("processes", "runs", "steps", "rounds"):
        if getattr(args, knob) < 1:
            parser.error(f"--{knob} must be at least 1")
    reason = missing_reason()
    if reason:
        raise SystemExit(f"cannot start PostgreSQL: {reason}")

    all_cpus = set(os.sched_getaffinity(0))
    ordered = sorted(all_cpus)
    server_cpus = {ordered[0]} if len(ordered) >= 2 else None
    client_cpus = set(ordered[1:]) if len(ordered) >= 2 else None

    with tempfile.TemporaryDirectory(prefix="mlrepro-bench-") as tmp:
        work = Path(tmp)
        repo = make_repo(
            work / "project",
            {"worker.py": WORKER, ".gitignore": "shard-*\nworker-*.err\ncontrol-*/\n"},
        )
        with postgres_cluster() as db_uri, moto_s3(work / "s3") as s3:
            server_env = {
                **s3.env,
                "AWS_MAX_ATTEMPTS": "2",
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            }
            with mlflow_server(
                work / "server",
                backend_uri=db_uri,
                artifacts_destination=s3.uri("artifacts"),
                extra_env=server_env,
            ) as url:
                from mlflow.tracking import MlflowClient

                port, db_port = str(urlsplit(url).port), str(urlsplit(db_uri).port)
                side = Side(
                    server=find_roots(lambda a: _has(a, "server", "--port", port)),
                    store=find_roots(lambda a: "moto_server" in " ".join(a) and str(s3.port) in a),
                    database=find_roots(lambda a: a[0].endswith("postgres") and db_port in a),
                    all_cpus=all_cpus,
                    server_cpus=server_cpus,
                    client_cpus=client_cpus,
                )
                for part in ("server", "store", "database"):
                    if not getattr(side, part):
                        print(f"warning: no {part} process found: its CPU counts as 0")
                client = MlflowClient(tracking_uri=url)
                server_log = work / "server" / "server.log"
                history: list[tuple[str, str, Round]] = []
                modes = [*MODES, CONTROL] if args.control else list(MODES)
                started: dict[str, list[float]] = {mode: [] for mode in modes}
                for variant in args.variants:
                    pools = pools_for(repo, url, side, args, VARIANTS[variant], modes)
                    try:
                        for mode in modes:
                            started[mode].append(pools[mode].started)
                            # Warm-up, not counted: server caches, the plugin's capture.
                            warmup = client.create_experiment(f"warmup-{variant}-{mode}")
                            one_round(pools[mode], warmup, side, server_log, args.runs)
                        for number in range(args.rounds):
                            # disabled, plugin, plugin, disabled, ...: with an even --rounds,
                            # every plugin round has a disabled round on each side.
                            order = modes[::-1] if number % 2 == 0 else modes
                            for mode in order:
                                experiment = f"load-{variant}-{mode}-{number}"
                                experiment_id = client.create_experiment(experiment)
                                done = one_round(
                                    pools[mode], experiment_id, side, server_log, args.runs
                                )
                                made = len(client.search_runs([experiment_id], max_results=10000))
                                assert made == done.runs, f"{made} runs, expected {done.runs}"
                                history.append((variant, mode, done))
                                print(
                                    f"round {number:2d} {variant:8s} {mode:8s} clock "
                                    f"{done.clock:6.2f}s {done.rate:6.2f} runs/s  "
                                    f"server+store {done.cost * 1000:6.2f} ms CPU/run  "
                                    f"{sum(done.requests.values()) / made:5.1f} requests/run",
                                    flush=True,
                                )
                    finally:
                        for pool in pools.values():
                            pool.close()
                side.place(pinned=False)
    report(args, history, started, side)


if __name__ == "__main__":
    main()
