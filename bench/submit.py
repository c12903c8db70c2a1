"""Submission benchmark: ``opseal submit seizures`` of 10,000 records through the CLI.

A real ``opseal-server serve`` runs on a fresh SQLite database; WCO, German Customs and its
national system are onboarded as in the test suite; then the CLI, a separate process, reads a
CSV of 10,000 records (about 12,000 rows), validates, seals, queues and sends them. Timed:
the CLI process from start to exit. Its peak resident memory comes from ``wait4``.

Then the cost of one command (issue 10): ``help_s``, ``opseal --help`` as a new process, and
``cli_roundtrip_s``, one submission of a single record as a new process (start-up, unlock,
login, sync, seal, send), without an agent (the device key re-sealed at the default Argon2id
cost, as on a real device) and with ``opseal agent`` running (which then runs the command in
its warm process: its CPU time is added to the command's); medians of several runs.

The last line printed is one JSON object. Usage: ``.venv/bin/python bench/submit.py
[--records N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test suite's helpers

from opseal.client._demo_data import seizure_records
from opseal.client.profile import Profile
from opseal.client.seizures import write_seizures_csv
from tests.client.conftest import PASSPHRASE
from tests.client.national import NATIONAL_SYSTEM, OPSEAL, cli, onboard, stored_messages
from tests.server.procs import (
    Node,
    ServerProcess,
    admin_context,
    cpu_seconds,
    prepare_database,
)

ROOT = Path(__file__).resolve().parents[1]


def _timed(*argv: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one ``opseal`` process; the CPU time says more than the
    wall time on a machine other work shares."""
    env = {**os.environ, "OPSEAL_PASSPHRASE": PASSPHRASE}
    start = time.perf_counter()
    proc = subprocess.Popen([str(OPSEAL), *argv], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)  # fmt: skip
    assert proc.stdout is not None
    output = proc.stdout.read()
    proc.stdout.close()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, output
    return elapsed, usage.ru_utime + usage.ru_stime


def _medians(name: str, runs: list[tuple[float, float]]) -> dict[str, float]:
    return {
        name: round(statistics.median(wall for wall, _ in runs), 3),
        f"{name}_cpu": round(statistics.median(cpu for _, cpu in runs), 3),
    }


def _roundtrips(
    home: Path, csvs: list[Path], agent_pid: int | None = None
) -> list[tuple[float, float]]:
    """Single-record submissions; with an agent, which runs the command, its CPU time counts."""
    profile = ("--home", str(home), "--profile", NATIONAL_SYSTEM)
    runs = []
    for c in csvs:
        before = _cpu_of(agent_pid)
        wall, cpu = _timed(*profile, "submit", "seizures", str(c), "--op", "op-stop-v")
        runs.append((wall, cpu + _cpu_of(agent_pid) - before))
    return runs


def _cpu_of(pid: int | None) -> float:
    """CPU seconds (user + system) a running process has used so far (0 for none)."""
    return 0.0 if pid is None else cpu_seconds(pid)


def _command_costs(home: Path, runs: int, first: int) -> dict[str, float]:
    """``opseal --help`` and single-record submissions, without and with the agent."""
    # As pip does for an installed wheel; a tree run with PYTHONDONTWRITEBYTECODE=1 would
    # otherwise compile ~100 modules at every start (~0.3 s here).
    for package in ("client", "crypto", "wire"):
        compileall.compile_dir(ROOT / package, quiet=1)
    device = Profile(NATIONAL_SYSTEM, home)
    device.save_key("device", device.load_key("device", PASSPHRASE), PASSPHRASE)  # default cost
    extra = seizure_records("DE", first + 2 * runs, datetime.date.today())[first:]
    csvs = []
    for n, record in enumerate(extra):
        csvs.append(home / f"one-{n}.csv")
        write_seizures_csv(csvs[-1], [record])
    help_s = [_timed("--help") for _ in range(runs)]
    without = _roundtrips(home, csvs[:runs])
    profile = ("--home", str(home), "--profile", NATIONAL_SYSTEM)
    _timed(*profile, "agent", "start", "--idle-timeout", "5m")
    try:
        agent_pid = json.loads((home / NATIONAL_SYSTEM / "agent.json").read_text())["pid"]
        with_agent = _roundtrips(home, csvs[runs:], agent_pid)
    finally:
        _timed(*profile, "agent", "stop")
    return {
        **_medians("help_s", help_s),
        **_medians("cli_roundtrip_s_without_agent", without),
        **_medians("cli_roundtrip_s_with_agent", with_agent),
    }


async def run(records: int, runs: int = 5) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        url = f"sqlite+aiosqlite:///{home / 'opseal.db'}"
        await prepare_database(url)
        csv = home / "seizures.csv"
        rows = write_seizures_csv(csv, seizure_records("DE", records, datetime.date.today()))
        async with admin_context(url) as ctx, ServerProcess(url) as server:
            await onboard(Node(server.url, ctx), home)
            start = time.perf_counter()
            proc = cli(home, "submit", "seizures", str(csv), "--op", "op-stop-v")
            _, status, usage = await asyncio.to_thread(os.wait4, proc.pid, 0)
            elapsed = time.perf_counter() - start
            proc.returncode = os.waitstatus_to_exitcode(status)
            output = proc.stdout.read().decode() if proc.stdout else ""
            if proc.stdout:
                proc.stdout.close()
            assert proc.returncode == 0, output
            stored, distinct = await stored_messages(ctx)
            assert (stored, distinct) == (records, records), (stored, distinct)
            costs = await asyncio.to_thread(_command_costs, home, runs, records)
    return {
        "records": records,
        "csv_rows": rows,
        "records_per_s": round(records / elapsed),
        "elapsed_s": round(elapsed, 2),
        "client_peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        **costs,
        "cores": len(os.sched_getaffinity(0)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5, help="runs of each single command")
    args = parser.parse_args()
    figures = asyncio.run(run(args.records, args.runs))
    for key, value in figures.items():
        print(f"{key:>20}: {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
