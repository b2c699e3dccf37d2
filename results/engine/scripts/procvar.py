import json, subprocess, sys, numpy as np
N = int(sys.argv[1]); dur = sys.argv[2]
res = {"free": [], "pin": []}
for i in range(N):
    for cond in (("free", "pin") if i % 2 == 0 else ("pin", "free")):
        p = subprocess.run([sys.executable, "results/engine/scripts/one.py", cond, dur], capture_output=True, text=True)
        res[cond].append(np.array(json.loads(p.stdout)))
for cond, rs in res.items():
    for est, f in [("min", np.min), ("p10", lambda a: np.percentile(a, 10)), ("p25", lambda a: np.percentile(a, 25)), ("med", np.median)]:
        v = np.log([f(a) for a in rs])
        print(cond, est, "sd between processes", round(float(v.std(ddof=1)), 4), "mean ms", round(float(np.exp(v.mean())), 3))
    print(cond, "n per process", [len(a) for a in rs][:6])
