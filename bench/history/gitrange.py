"""Git for history and bisect: the commits of a range (oldest first, first parent), what is known
of each (generation, time, subject), and whether a commit's tree can be measured at all
(bench.gates.git does the worktrees)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.errors import UserError

#: A range larger than this is refused (a typo such as `main` instead of `main~50..main`).
MAX_COMMITS = 5000


@dataclass(frozen=True)
class Commit:
    sha: str
    generation: int | None
    commit_time: int | None
    subject: str

    @property
    def short(self) -> str:
        return self.sha[:12]

    def info(self) -> tuple[str, int | None, int | None, str]:
        return self.sha, self.generation, self.commit_time, self.subject


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)


def toplevel(start: Path | None = None) -> Path:
    r = _git(start or Path.cwd(), "rev-parse", "--show-toplevel")
    if r.returncode != 0:
        raise UserError(f"history and bisect need a git checkout; {start or Path.cwd()} is not inside one")
    return Path(r.stdout.strip())


def _check_ref(text: str, what: str) -> None:
    if not text or text.startswith("-") or any(c.isspace() or ord(c) < 32 for c in text):
        raise UserError(f"{what}: invalid git revision {text!r}")


def describe(repo: Path, shas: list[str]) -> list[Commit]:
    """Generation (ancestor count), commit time and subject of each sha."""
    out = []
    for sha in shas:
        log = _git(repo, "log", "-1", "--format=%ct%x1f%s", sha)
        gen = _git(repo, "rev-list", "--count", sha)
        t, _, subject = log.stdout.rstrip("\n").partition("\x1f") if log.returncode == 0 else ("", "", "")
        out.append(Commit(sha, int(gen.stdout.strip()) if gen.returncode == 0 else None,
                          int(t) if t.strip().isdigit() else None, subject))
    return out


def resolve(repo: Path, ref: str, what: str = "revision") -> str:
    """The full sha of a commit-ish, or a UserError."""
    _check_ref(ref, what)
    r = _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if r.returncode != 0:
        raise UserError(f"{what}: unknown git revision {ref!r} in {repo}")
    return r.stdout.strip()


def commits_in(repo: Path, rev_range: str, every: int = 1) -> list[Commit]:
    """The commits of `rev_range` (``A..B``, or one revision: that commit alone), oldest first,
    following first parents; with `every` N, every N-th counted back from the newest (the newest
    always kept)."""
    _check_ref(rev_range.replace("..", ""), "REV_RANGE")
    if every < 1:
        raise UserError(f"--every must be a positive integer, got {every}")
    if ".." in rev_range:
        a, _, b = rev_range.partition("..")
        if b.startswith("."):
            raise UserError(f"REV_RANGE: use A..B (first-parent history from A, exclusive, to B), got {rev_range!r}")
        a_sha = resolve(repo, a or "HEAD", "REV_RANGE")
        b_sha = resolve(repo, b or "HEAD", "REV_RANGE")
        r = _git(repo, "rev-list", "--first-parent", "--reverse", f"--max-count={MAX_COMMITS + 1}", f"{a_sha}..{b_sha}")
        shas = r.stdout.split()
        if r.returncode != 0:
            raise UserError(f"REV_RANGE {rev_range!r}: git rev-list failed: {r.stderr.strip()[:200]}")
    else:
        shas = [resolve(repo, rev_range, "REV_RANGE")]
    if not shas:
        raise UserError(f"REV_RANGE {rev_range!r} holds no commit (is A an ancestor of B?)")
    if len(shas) > MAX_COMMITS:
        raise UserError(f"REV_RANGE {rev_range!r} holds more than {MAX_COMMITS} commits; narrow it or use --every")
    picked = shas[::-1][::every][::-1]
    return describe(repo, picked)


def measurable(repo: Path, sha: str) -> bool:
    """The tree has resnet-bench's isolated worker and resnet_impl (bench.gates.git's test)."""
    from bench.execute.local import WORKER_FILES

    def has(path: str) -> bool:
        return _git(repo, "cat-file", "-e", f"{sha}:{path}").returncode == 0

    return any(has(p) for p, _ in WORKER_FILES) and has("resnet_impl/__init__.py")


def resolver(repo: Path | None):
    """A function short sha -> (sha, generation, time, subject) or None, for `db import`: the
    commit in `repo` when it is there (None: no repository, nothing resolved)."""
    if repo is None:
        return None

    def find(short: str):
        if not short or short.startswith("-") or not all(c in "0123456789abcdef" for c in short.lower()):
            return None
        r = _git(repo, "rev-parse", "--verify", "--quiet", f"{short}^{{commit}}")
        if r.returncode != 0:
            return None
        return describe(repo, [r.stdout.strip()])[0].info()

    return find
