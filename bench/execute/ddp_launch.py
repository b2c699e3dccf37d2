"""``python -m bench.execute.ddp_launch ARGS``: torch.distributed.run (torchrun) with ARGS, in a
process that the kernel kills when its parent dies, so a killed sweep leaves no launcher
behind (its ranks die with it the same way: bench.execute.ddp_worker)."""

from __future__ import annotations


def main() -> None:
    from bench.execute.procs import die_with_parent

    die_with_parent()
    from torch.distributed.run import main as torchrun

    torchrun()  # reads sys.argv[1:]; a failed rank: ChildFailedError, its summary on stderr, exit 1


if __name__ == "__main__":
    main()
