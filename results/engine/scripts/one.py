import json, sys, time, os
pin = sys.argv[1] == "pin"
if pin: os.sched_setaffinity(0, {1})
import torch
torch.set_num_threads(1)
sys.path.insert(0, ".")  # run from the repository root
import resnet_impl
torch.manual_seed(0)
m = resnet_impl.create_model("resnet18").eval()
x = torch.randn(1, 3, 64, 64)
with torch.no_grad():
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 0.5: m(x)
    s = []
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < float(sys.argv[2]):
        t = time.perf_counter_ns(); m(x); s.append((time.perf_counter_ns() - t) / 1e6)
print(json.dumps(s))
