"""CI gates: bench.gates.exact (committed params/MACs table) and bench.gates.speed (a
statistical speed comparison against a git revision or saved samples)."""
