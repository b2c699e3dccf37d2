"""The measuring core, free of argparse, rich and pandas: cases, modes, devices, timing,
statistics, static cost (profile) and the environment."""
