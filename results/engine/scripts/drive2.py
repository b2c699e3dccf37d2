# 8 processes of blocks.py (cont vs channels_last resnet50, interleaved blocks), each either alone
# or with a torch.compile of another resnet50 running on the other core, alternating A B A B
import json, subprocess, sys, numpy as np, os, time
N = int(sys.argv[1])
res = {"alone": [], "compile": []}
env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR="/tmp/rb-engine-cache")
for i in range(N):
    for cond in (("alone", "compile") if i % 2 == 0 else ("compile", "alone")):
        hog = None
        if cond == "compile":
            hog = subprocess.Popen([sys.executable, "results/engine/scripts/compile_loop.py"], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(3)
        p = subprocess.run([sys.executable, "results/engine/scripts/blocks.py", "1", "resnet50", "224", "1", "6", "0.3"],
                           capture_output=True, text=True)
        if hog: hog.kill(); hog.wait()
        res[cond].append(json.loads(p.stdout.strip().splitlines()[-1]))
json.dump(res, open("results/engine/scripts/interf.json", "w"))
for cond, rs in res.items():
    for est, f in [("med", np.median), ("p25", lambda a: np.percentile(a, 25))]:
        a = np.array([f(np.concatenate(r["cont"])) for r in rs]); b = np.array([f(np.concatenate(r["cl"])) for r in rs])
        lr = np.log(a / b)
        print(cond, est, "cont ms", round(float(np.median(a)), 1), "ratio", round(float(np.exp(lr.mean())), 4), "sd", round(float(lr.std(ddof=1)), 4))
