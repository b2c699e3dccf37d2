"""Performance over time: the results database and what is built on it.

- db.py: the schema (SQLite file or PostgreSQL URL, one schema through SQLAlchemy Core), its
  migrations, opening a database safely;
- store.py: machines, commits, sessions, records and probes written and read; `db import`;
- gitrange.py: the commits of a range, what git knows of each, whether a tree can be measured;
- measure.py: `history run` (commits in worktrees, neighbours interleaved in rounds, resumable);
- steps.py: step detection (asv's weighted L1 Potts fit with an information criterion), pure numpy;
- series.py: per case and machine fingerprint, a value per commit and every step with its CI;
- bisect.py: the first commit of a step by probes of the speed gate's interleaved measurement;
- report.py: tables, Markdown, JSON and one HTML page of the series.

Nothing below bench.history imports it; it imports store, results, execute, gates and report.
"""
