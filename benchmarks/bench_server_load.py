"""What the plugin costs a shared team server: server CPU per run, requests per run, runs/s.

The deployment is the one the team tests start: PostgreSQL backend store, moto S3
artifact destination, `mlflow server` in front (artifacts proxied). Each round starts
--processes client processes; each imports mlflow, sets its seed, tracks one data
shard (--inputs), sets the experiment and waits at a start line; then it makes --runs
runs, each a realistic short run: one params batch, --steps metric steps logged one
request each (as autolog does). Modes (plugin, MLREPRO_DISABLE=1) alternate round by
round on the same server. On a team the clients run elsewhere; on a small machine they
compete with the server for the same cores, so three figures are kept apart:

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

The clock of a round starts when the clients are released from the start line and
stops when the last one has exited: inside it are `start_run` (the plugin's capture
if its background part has not finished, the tags), the runs' requests, the uploads
and the wait for them at exit. Outside it: interpreter start, `import mlflow` (when
the plugin starts its background capture), seeding, fingerprinting the shard and
`set_experiment`, and by default a --pause (1 s) before the release, during which the
background capture finishes. That pause hides the import-time capture, so the
"nopause" variant releases the clients as soon as all are ready, and the whole-process
time (launch to last exit) is printed too.

Run time: each variant x mode x round starts --processes interpreters; with the
defaults (3 variants, 3 rounds, 16 x 4 runs of 50 steps) about 20-40 minutes.

    .venv/bin/python benchmarks/bench_server_load.py [--processes 16] [--runs 4] [--steps 50]
        [--params 8] [--inputs 1] [--rounds 3] [--variants pinned,unpinned,nopause] [--pause 1.0]
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
import time

import mlflow
import repro_common

worker, runs, experiment, go = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
steps, params, inputs = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
repro_common.seed_everything(1000 + worker)
for number in range(inputs):
    shard = f"shard-{worker}-{number}.bin"
    with open(shard, "wb") as handle:
        handle.write(f"rows of worker {worker}, shard {number}\\n".encode() * 512)
    repro_common.track_data(shard, name=f"shard{number}")
mlflow.set_experiment(experiment)
open(f"ready-{worker}", "w").close()
while not os.path.exists(go):
    time.sleep(0.005)
for index in range(runs):
    with mlflow.start_run():
        mlflow.log_params({f"p{k}": k * 0.1 for k in range(params)} | {"worker": worker})
        for step in range(steps):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
"""

MODES = ("plugin", "disabled")
VARIANTS = {
    # name: (server and clients on separate cores, pause before the release)
    "pinned": (True, None),
    "unpinned": (False, None),
    "nopause": (True, 0.0),
}
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


@dataclass
class Round:
    clock: float  # release -> last exit
    lifetime: float  # launch -> last exit
    runs: int
    cpu: dict[str, float]  # CPU seconds used during the clock, by part of the server side
    requests: Counter[str] = field(default_factory=Counter)


def one_round(
    repo: Path,
    url: str,
    server_log: Path,
    side: Side,
    experiment: str,
    args: argparse.Namespace,
    disabled: bool,
    pinned: bool,
    pause: float,
) -> Round:
    for stale in [*repo.glob("ready-*"), repo / "go.flag"]:
        stale.unlink(missing_ok=True)
    # Telemetry off in both modes: offline, MLflow's telemetry thread pops an environment variable
    # while other threads iterate os.environ (requests' proxy lookup), a race that kills runs.
    env = clean_env(
        MLFLOW_TRACKING_URI=url,
        MLFLOW_DISABLE_TELEMETRY="true",
        **({"MLREPRO_DISABLE": "1"} if disabled else {}),
    )
    side.place(pinned)
    client_cpus = side.client_cpus if pinned and side.client_cpus else side.all_cpus
    go = repo / "go.flag"
    argv = [
        str(args.runs),
        experiment,
        str(go),
        str(args.steps),
        str(args.params),
        str(args.inputs),
    ]
    launched = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "worker.py", str(w), *argv],
            cwd=repo,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: os.sched_setaffinity(0, client_cpus),
        )
        for w in range(args.processes)
    ]
    while not all((repo / f"ready-{w}").exists() for w in range(args.processes)):
        failed = [p for p in procs if p.poll() not in (None, 0)]
        if failed:
            raise SystemExit(
                f"a worker failed before the start line:\n{failed[0].communicate()[1][-3000:]}"
            )
        time.sleep(0.02)
    time.sleep(pause)
    _, offset = requests_logged(server_log)
    before = side.cpu()
    start = time.perf_counter()
    go.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=900)
        if proc.returncode != 0:
            raise SystemExit(f"a worker failed:\n{err[-3000:]}")
    end = time.perf_counter()
    time.sleep(0.5)  # the server's last requests and log lines
    after = side.cpu()
    served, _ = requests_logged(server_log, offset)
    return Round(
        clock=end - start,
        lifetime=end - launched,
        runs=args.processes * args.runs,
        cpu={part: after[part] - before[part] for part in before},
        requests=served,
    )


# --- the report -------------------------------------------------------------------------


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.3f}" if b else "n/a"


def report(
    args: argparse.Namespace, rounds: dict[tuple[str, str], list[Round]], side: Side
) -> None:
    variants = [v for v in args.variants if any((v, m) in rounds for m in MODES)]
    every = {m: [r for (v, mode), rs in rounds.items() if mode == m for r in rs] for m in MODES}
    print()
    print(
        f"workload: {args.processes} processes x {args.runs} runs; a run = 1 params batch "
        f"({args.params + 1} params) + {args.steps} metric steps (one request each); "
        f"{args.inputs} tracked input(s) per run; {args.rounds} round(s) per mode and variant"
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
        f"   server + store cost ratio plugin/disabled: {_ratio(cost['plugin'], cost['disabled'])}"
        "  (target <= 1.05)"
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

    print("\n3. runs/s = runs of a round / its clock (median of the rounds), plugin vs disabled")
    print("   clock: from the release at the start line to the last client's exit; it holds")
    print("   start_run, the runs' requests, the uploads and the exit wait for them. Outside it:")
    print("   interpreter start, import mlflow, seeding, fingerprinting, set_experiment and the")
    print(f"   --pause ({args.pause:g} s) in which the plugin's import-time capture finishes.")
    for variant in variants:
        pinned, pause = VARIANTS[variant]
        pinned = pinned and bool(side.server_cpus)
        rate = {}
        life = {}
        for mode in MODES:
            done = rounds.get((variant, mode), [])
            rate[mode] = statistics.median(r.runs / r.clock for r in done)
            life[mode] = statistics.median(r.runs / r.lifetime for r in done)
        what = {
            "pinned": "server pinned apart from the clients, with the pause (the target figure)",
            "unpinned": "nothing pinned, with the pause (for information)",
            "nopause": "as 'pinned' but released as soon as all are ready: the pause removed",
        }[variant]
        note = "" if pinned or not VARIANTS[variant][0] else " [pinning not possible: unpinned]"
        print(f"   {variant}: {what}{note}")
        print(
            f"      plugin {rate['plugin']:6.2f} runs/s  disabled {rate['disabled']:6.2f} runs/s  "
            f"ratio {_ratio(rate['plugin'], rate['disabled'])}"
            + ("  (target >= 0.95)" if variant == "pinned" else "")
        )
        if pause is not None and pause == 0:
            print(
                f"      whole processes (launch to last exit, imports and capture inside): "
                f"plugin {life['plugin']:6.2f} runs/s  disabled {life['disabled']:6.2f} runs/s  "
                f"ratio {_ratio(life['plugin'], life['disabled'])}"
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
    parser.add_argument("--runs", type=int, default=4, help="runs per process")
    parser.add_argument(
        "--steps", type=int, default=50, help="metric steps per run, one request each"
    )
    parser.add_argument("--params", type=int, default=8, help="params per run (one batch request)")
    parser.add_argument("--inputs", type=int, default=1, help="tracked data inputs per process")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per mode and variant")
    parser.add_argument(
        "--variants",
        default="pinned,unpinned,nopause",
        help="comma-separated: pinned (server on one core, clients on the others; the target "
        "figure), unpinned (for information), nopause (pinned, without the pause before the clock)",
    )
    parser.add_argument(
        "--pause",
        type=float,
        default=1.0,
        help="seconds between all clients ready and their release (not in the nopause variant)",
    )
    args = parser.parse_args()
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}: choose from {', '.join(VARIANTS)}")
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
            work / "project", {"worker.py": WORKER, ".gitignore": "shard-*\nready-*\ngo.flag\n"}
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
                rounds: dict[tuple[str, str], list[Round]] = {}
                # Warm-up round (server caches, connection pools, first S3 client), not counted.
                client.create_experiment("warmup")
                warm = argparse.Namespace(**{**vars(args), "runs": 1})
                one_round(repo, url, server_log, side, "warmup", warm, False, False, args.pause)
                number = 0
                for repeat in range(args.rounds):
                    for variant in args.variants:
                        pinned, pause = VARIANTS[variant]
                        order = MODES if number % 2 == 0 else MODES[::-1]
                        number += 1
                        for mode in order:
                            experiment = f"load-{variant}-{mode}-{repeat}"
                            experiment_id = client.create_experiment(experiment)
                            done = one_round(
                                repo,
                                url,
                                server_log,
                                side,
                                experiment,
                                args,
                                disabled=mode == "disabled",
                                pinned=pinned,
                                pause=args.pause if pause is None else pause,
                            )
                            made = len(client.search_runs([experiment_id], max_results=10000))
                            assert made == done.runs, f"{made} runs, expected {done.runs}"
                            rounds.setdefault((variant, mode), []).append(done)
                            server_ms = (done.cpu["server"] + done.cpu["store"]) / made * 1000
                            print(
                                f"round {repeat} {variant:8s} {mode:8s} clock {done.clock:6.2f}s "
                                f"{made / done.clock:6.2f} runs/s  server+store {server_ms:6.2f} "
                                f"ms CPU/run  {sum(done.requests.values()) / made:5.1f} requests/run",
                                flush=True,
                            )
                side.place(pinned=False)
    report(args, rounds, side)


if __name__ == "__main__":
    main()
