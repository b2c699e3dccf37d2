"""torch.profiler of the forward of resnet_impl and torchvision resnet50 (same weights, 1 thread):
per-op self time and memory allocated per forward. Usage: python tools/parity_profile.py [contiguous|channels_last]"""
import sys, torch, torchvision
from torch.profiler import profile, ProfilerActivity
import resnet_impl
torch.set_num_threads(1)
layout = sys.argv[1] if len(sys.argv) > 1 else "channels_last"
fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
torch.manual_seed(0)
tv = torchvision.models.resnet50().eval()
ours = resnet_impl.create_model("resnet50").eval(); ours.load_state_dict(tv.state_dict())
x = torch.randn(1, 3, 224, 224).contiguous(memory_format=fmt)
models = {"ours": ours.to(memory_format=fmt), "torchvision": tv.to(memory_format=fmt)}
res = {}
with torch.no_grad():
    for _ in range(5):
        for m in models.values(): m(x)
    for name, m in models.items():
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            for _ in range(10):
                m(x)
        ka = prof.key_averages()
        res[name] = {e.key: (e.count, e.self_cpu_time_total / 10 / 1e3, e.self_cpu_memory_usage / 10 / 2**20) for e in ka}
keys = sorted(set(res["ours"]) | set(res["torchvision"]), key=lambda k: -res["ours"].get(k, (0, 0, 0))[1])
print(f"{layout}: per forward, self CPU ms and memory allocated (MiB), ours vs torchvision")
print(f"{'op':<36}{'calls o/t':>12}{'ms ours':>10}{'ms tv':>9}{'MiB ours':>10}{'MiB tv':>9}")
for k in keys[:14]:
    o, t = res["ours"].get(k, (0, 0, 0)), res["torchvision"].get(k, (0, 0, 0))
    print(f"{k:<36}{f'{o[0]//10}/{t[0]//10}':>12}{o[1]:>10.2f}{t[1]:>9.2f}{o[2]:>10.1f}{t[2]:>9.1f}")
print("total", *(f"{n}: {sum(v[1] for v in r.values()):.2f} ms, {sum(v[2] for v in r.values() if v[2] > 0):.1f} MiB" for n, r in res.items()))
