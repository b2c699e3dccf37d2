"""Git for the speed gate: find the checkout, resolve the base revision, and check it out in a
temporary worktree that is removed afterwards (also after an error, Ctrl-C or SIGTERM)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.errors import UserError
from bench.execute.local import WORKER_FILES


def _git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=check)


def git_toplevel(start: Path) -> Path:
    try:
        out = _git(start, "rev-parse", "--show-toplevel")
    except (OSError, subprocess.CalledProcessError):
        raise UserError(f"--base-ref needs a git checkout; {start} is not inside one") from None
    return Path(out.stdout.strip())


def resolve_ref(repo: Path, ref: str) -> str:
    """The commit of `ref`, or a UserError; also refuses a ref whose tree cannot be measured."""
    if not ref or ref.startswith("-"):
        raise UserError(f"--base-ref: invalid git ref {ref!r}")
    r = _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
    if r.returncode != 0:
        raise UserError(f"--base-ref: unknown git ref {ref!r} in {repo} (try a branch, a tag, a commit or HEAD~1)")
    commit = r.stdout.strip()
    def has(path: str) -> bool:
        return _git(repo, "cat-file", "-e", f"{commit}:{path}", check=False).returncode == 0

    if not any(has(p) for p, _ in WORKER_FILES) or not has("resnet_impl/__init__.py"):
        raise UserError(f"--base-ref {ref} ({commit[:12]}) has no bench/worker.py (nor bench/execute/worker.py): "
                        "that revision cannot be measured by this gate (it predates resnet-bench's isolated runner)")
    return commit


class Worktree:
    """`git worktree add --detach` of a commit in a temporary directory, removed on exit
    (also after an error or Ctrl-C)."""

    def __init__(self, repo: Path, commit: str):
        self.repo, self.commit = repo, commit
        self.parent = Path(tempfile.mkdtemp(prefix="resnet-bench-base-"))
        self.path = self.parent / "tree"

    def __enter__(self) -> Path:
        import signal
        import threading

        self._old_term = None
        if threading.current_thread() is threading.main_thread():  # SIGTERM (CI cancel, timeout): clean up too
            self._old_term = signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
        r = _git(self.repo, "worktree", "add", "--detach", "--quiet", str(self.path), self.commit, check=False)
        if r.returncode != 0:
            self.__exit__()
            raise UserError(f"git worktree add failed for {self.commit[:12]}: {r.stderr.strip().splitlines()[-1:]}")
        return self.path

    def __exit__(self, *exc) -> None:
        import signal

        _git(self.repo, "worktree", "remove", "--force", str(self.path), check=False)
        shutil.rmtree(self.parent, ignore_errors=True)
        _git(self.repo, "worktree", "prune", check=False)
        if self._old_term is not None:
            signal.signal(signal.SIGTERM, self._old_term)
