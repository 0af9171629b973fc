"""Mutation check: break the code one curated way at a time and see whether the tests notice.

Each entry of tools/mutations.toml replaces an exact snippet of one file; the tool applies it in a fresh copy
of the repository (the working tree is never touched), runs the entry's tests there with a time limit and
reports KILLED (a test failed), SURVIVED (every test passed: a gap), NOT APPLICABLE (the snippet is not in
the file, or not exactly once: the code moved on) or ERROR (the tests could not run). On demand, not in CI:

    python tools/mutation.py                      # every entry, table on stdout
    python tools/mutation.py --only runner-       # entries whose id starts with runner-
    python tools/mutation.py --output tools/mutation-results.md --baseline
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = Path(__file__).resolve().parent / "mutations.toml"
#: what a copy of the repository leaves out: VCS data, virtual environments, caches, results
IGNORED = shutil.ignore_patterns(".git", ".venv", "venv", "__pycache__", "*.egg-info", ".pytest_cache",
                                 ".ruff_cache", "build", "dist", "node_modules")


@dataclass(frozen=True)
class Mutation:
    """One entry of the catalogue."""

    id: str
    what: str
    file: str
    original: str
    replacement: str
    tests: tuple[str, ...]
    timeout: float | None = None


@dataclass
class Result:
    """What running one mutation gave."""

    mutation: Mutation
    status: str  # KILLED, SURVIVED, NOT APPLICABLE, ERROR
    detail: str = ""
    seconds: float = 0.0
    failed: list[str] = field(default_factory=list)


class CatalogueError(Exception):
    """The catalogue cannot be read or an entry misses a field."""


def load(path: Path) -> list[Mutation]:
    """The catalogue's entries, checked for the fields each needs and for unique ids."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CatalogueError(f"{path}: {exc}") from None
    entries, seen = [], set()
    for number, item in enumerate(raw.get("mutation", []), start=1):
        missing = [k for k in ("id", "what", "file", "original", "replacement", "tests") if k not in item]
        if missing:
            raise CatalogueError(f"{path}: mutation #{number} misses {', '.join(missing)}")
        if item["id"] in seen:
            raise CatalogueError(f"{path}: mutation id {item['id']!r} is used twice")
        seen.add(item["id"])
        entries.append(Mutation(id=item["id"], what=item["what"], file=item["file"], original=item["original"],
                                replacement=item["replacement"], tests=tuple(item["tests"]),
                                timeout=item.get("timeout")))
    return entries


def applicable(mutation: Mutation, root: Path) -> str | None:
    """None when the snippet occurs exactly once in the file, else why the entry does not apply."""
    path = root / mutation.file
    if not path.is_file():
        return f"file {mutation.file} not found"
    count = path.read_text(encoding="utf-8").count(mutation.original)
    if count == 0:
        return "snippet not found"
    if count > 1:
        return f"snippet found {count} times"
    return None


def copy_repo(source: Path, target: Path) -> Path:
    """A copy of the repository's files (not .git, not virtual environments) under `target`."""
    dest = target / "repo"
    shutil.copytree(source, dest, ignore=IGNORED, symlinks=True)
    return dest


def environment(repo: Path) -> dict[str, str]:
    """The environment of a run in `repo`: its package first on the path, in pytest and every subprocess."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(repo), *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def check_import(repo: Path) -> None:
    """Refuse to run if `import hpoqueue` in the copy does not load the copy's package."""
    out = subprocess.run([sys.executable, "-c", "import hpoqueue; print(hpoqueue.__file__)"], cwd=repo,
                         env=environment(repo), capture_output=True, text=True, timeout=60)
    loaded = Path(out.stdout.strip() or "?").resolve()
    if not loaded.is_relative_to(repo.resolve()):
        raise SystemExit(f"mutation: `import hpoqueue` in the copy loads {loaded}, not the copy "
                         f"({out.stderr.strip()[-300:]}); run the tool with the project's own Python")


def run_tests(repo: Path, tests: tuple[str, ...], timeout: float, per_test: float) -> tuple[int | None, str, float]:
    """(pytest's exit status or None on timeout, its output, seconds) for `tests` run in `repo`."""
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-o",
               f"timeout={per_test:g}", "-rfE", *tests]
    started = time.monotonic()
    proc = subprocess.Popen(command, cwd=repo, env=environment(repo), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # pytest and whatever it started in its session
        output, _ = proc.communicate()
        code = None
    return code, output, time.monotonic() - started


def failed_tests(output: str) -> list[str]:
    """The node ids pytest's short summary names as FAILED or ERROR."""
    return re.findall(r"^(?:FAILED|ERROR) (\S+)", output, flags=re.MULTILINE)


def classify(code: int | None, output: str) -> tuple[str, str]:
    """(status, detail) from pytest's exit status."""
    if code is None:
        return "KILLED", "timeout (the tests hung)"
    if code == 0:
        return "SURVIVED", "every test passed"
    if code in (1, 2):  # tests failed; or collection broke (an import the mutation broke)
        return "KILLED", "tests failed" if code == 1 else "collection failed"
    if code == 5:
        return "ERROR", "no tests collected (check the entry's tests)"
    lines = [line for line in output.strip().splitlines() if line.strip()]
    return "ERROR", f"pytest exited {code}: {lines[-1][:200] if lines else ''}"


def mutate(mutation: Mutation, scratch: Path, timeout: float, per_test: float) -> Result:
    """Apply one mutation in a fresh copy of the repository and run its tests there."""
    why = applicable(mutation, ROOT)
    if why is not None:
        return Result(mutation, "NOT APPLICABLE", why)
    with tempfile.TemporaryDirectory(prefix=f"mut-{mutation.id}-", dir=scratch) as tmp:
        repo = copy_repo(ROOT, Path(tmp))
        path = repo / mutation.file
        path.write_text(path.read_text(encoding="utf-8").replace(mutation.original, mutation.replacement),
                        encoding="utf-8")
        code, output, seconds = run_tests(repo, mutation.tests, mutation.timeout or timeout, per_test)
    status, detail = classify(code, output)
    return Result(mutation, status, detail, seconds, failed_tests(output))


def baseline(entries: list[Mutation], scratch: Path, timeout: float, per_test: float) -> dict[tuple[str, ...], str]:
    """Run every distinct test selection on the unmutated code; returns the selections that did not pass."""
    broken: dict[tuple[str, ...], str] = {}
    with tempfile.TemporaryDirectory(prefix="mut-baseline-", dir=scratch) as tmp:
        repo = copy_repo(ROOT, Path(tmp))
        for tests in dict.fromkeys(m.tests for m in entries):
            code, output, seconds = run_tests(repo, tests, timeout, per_test)
            print(f"baseline {' '.join(tests)}: exit {code} in {seconds:.0f} s", file=sys.stderr, flush=True)
            if code != 0:
                broken[tests] = ", ".join(failed_tests(output)[:3]) or f"exit {code}"
    return broken


def table(results: list[Result]) -> str:
    """A markdown table of the results and a one-line score."""
    rows = ["| mutation | file | what is broken | result | seconds | first test that failed |",
            "|---|---|---|---|---:|---|"]
    for r in results:
        status = r.status if r.status in ("KILLED", "SURVIVED") else f"{r.status} ({r.detail})"
        if r.status == "KILLED" and r.detail != "tests failed":
            status = f"KILLED ({r.detail})"
        rows.append(f"| {r.mutation.id} | {r.mutation.file} | {r.mutation.what} | {status} | {r.seconds:.0f} | "
                    f"{r.failed[0] if r.failed else ''} |")
    ran = [r for r in results if r.status in ("KILLED", "SURVIVED")]
    killed = sum(r.status == "KILLED" for r in ran)
    score = f"{killed}/{len(ran)} killed ({100 * killed / len(ran):.0f}%)" if ran else "nothing ran"
    others = len(results) - len(ran)
    return "\n".join(rows) + f"\n\n{score}" + (f"; {others} not applicable or in error" if others else "") + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tools/mutation.py", description=(
        "Apply each mutation of the catalogue in a temporary copy of the repository, run the tests that "
        "must notice it, and print killed / survived / not applicable as a table."))
    parser.add_argument("--catalogue", type=Path, default=CATALOGUE, help="TOML catalogue (default: %(default)s)")
    parser.add_argument("--only", action="append", default=[], metavar="PREFIX",
                        help="run only entries whose id starts with PREFIX (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the entries and whether each applies, then exit")
    parser.add_argument("--timeout", type=float, default=300, help="seconds for one entry's pytest run "
                                                                   "(default: %(default)s)")
    parser.add_argument("--per-test-timeout", type=float, default=120,
                        help="pytest-timeout for each test, so a hung test fails and cleans up (default: %(default)s)")
    parser.add_argument("--baseline", action="store_true",
                        help="first run each entry's tests unmutated; entries whose tests fail then are ERROR")
    parser.add_argument("--output", type=Path, help="also write the dated table (markdown) to this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        entries = load(args.catalogue)
    except CatalogueError as exc:
        print(f"mutation: error: {exc}", file=sys.stderr)
        return 2
    if args.only:
        entries = [m for m in entries if m.id.startswith(tuple(args.only))]
        if not entries:
            print(f"mutation: error: no entry id starts with {', '.join(args.only)}", file=sys.stderr)
            return 2
    if args.list:
        for m in entries:
            print(f"{m.id:40} {m.file:32} {applicable(m, ROOT) or 'applies'}")
        return 0
    scratch = Path(tempfile.mkdtemp(prefix="hpoqueue-mutation-"))
    try:
        probe = copy_repo(ROOT, scratch / "probe")
        check_import(probe)
        shutil.rmtree(probe.parent)
        broken = baseline(entries, scratch, args.timeout, args.per_test_timeout) if args.baseline else {}
        results = []
        started = datetime.now(timezone.utc)
        for number, m in enumerate(entries, start=1):
            if m.tests in broken:
                result = Result(m, "ERROR", f"tests fail unmutated: {broken[m.tests]}")
            else:
                result = mutate(m, scratch, args.timeout, args.per_test_timeout)
            results.append(result)
            print(f"[{number}/{len(entries)}] {m.id}: {result.status} ({result.detail}) {result.seconds:.0f} s",
                  file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    text = table(results)
    print(text)
    if args.output:
        header = (f"# Mutation check, {started:%Y-%m-%d %H:%M} UTC\n\n`python tools/mutation.py"
                  f"{' --baseline' if args.baseline else ''}` on commit {_commit()}, "
                  f"catalogue {args.catalogue.name} ({len(results)} entries).\n\n")
        args.output.write_text(header + text, encoding="utf-8")
    return 1 if any(r.status == "SURVIVED" for r in results) else 0


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


if __name__ == "__main__":
    sys.exit(main())
