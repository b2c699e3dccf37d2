# Does torch.compile keep record_function scopes (stage annotations) in a profiled step?
import torch, warnings
from torch.profiler import profile, ProfilerActivity, record_function
torch.set_num_threads(1)
class M(torch.nn.Module):
    def __init__(s):
        super().__init__(); s.a = torch.nn.Conv2d(3, 8, 3); s.b = torch.nn.Conv2d(8, 8, 3)
    def forward(s, x):
        with record_function("stage:stem"):
            x = torch.relu(s.a(x))
        with record_function("stage:layer1"):
            x = torch.relu(s.b(x))
        return x
m = M().eval(); x = torch.randn(1, 3, 32, 32)
for name, fn in (("eager", m), ("compiled", torch.compile(m)), ):
    with torch.no_grad():
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            fn(x); fn(x)
        with profile(activities=[ProfilerActivity.CPU]) as p:
            fn(x)
    names = sorted({e.name for e in p.events() if e.name.startswith("stage:")})
    print(name, names, [str(x.message)[:120] for x in w if "rofil" in str(x.message)])
