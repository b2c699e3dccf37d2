# one process: two modes of one model measured in interleaved blocks; prints JSON
import json, sys, time, torch
sys.path.insert(0, ".")  # run from the repository root
threads, model, size, bs, nblocks, block_s = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
torch.set_num_threads(threads)
import resnet_impl
torch.manual_seed(0)
base = resnet_impl.create_model(model).eval()
steps = {}
import copy
for name, fmt in (("cont", torch.contiguous_format), ("cl", torch.channels_last)):
    m = copy.deepcopy(base).to(memory_format=fmt)
    x = torch.randn(bs, 3, size, size).contiguous(memory_format=fmt)
    steps[name] = (m, x)
def call(name):
    m, x = steps[name]
    with torch.no_grad():
        return m(x)
for name in steps:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 1.0: call(name)
out = {n: [] for n in steps}
order = list(steps)
for b in range(nblocks):
    for name in (order if b % 2 == 0 else order[::-1]):
        s = []
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < block_s or len(s) < 3:
            t = time.perf_counter_ns(); call(name); s.append((time.perf_counter_ns() - t) / 1e6)
        out[name].append(s)
print(json.dumps(out))
